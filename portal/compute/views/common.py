from __future__ import annotations

from django.http import Http404

from portal.compute.models import Instance, InstanceStatus
from portal.tenancy.access import Access


def get_instance(access: Access, instance_id, *, terminated: bool = False) -> Instance:
    """An instance of the project in `access`, or 404. A terminated one only with `terminated`
    (its page, which says what it was): there is nothing left to act on or to read a console of."""
    instances = Instance.objects.with_catalog().select_related("firewall", "created_by", "backup_schedule")
    if not terminated:
        instances = instances.exclude(status=InstanceStatus.TERMINATED)
    instance = instances.filter(project=access.project, pk=instance_id).first()
    if instance is None:
        raise Http404("No such server.")
    instance.project = access.project  # loaded with its organization already
    return instance


def apply_problems(form, problems) -> None:
    """Each problem next to its field (or at the top), unless the field already shows one: the
    form could not parse it, and that message says what to fix first."""
    unparsed = set(form.errors)
    for problem in problems:
        field = problem.field if problem.field in form.fields else None
        if field is None or field not in unparsed:
            form.add_error(field, problem.message)


def refusal_status(form, refused) -> int:
    """Show every problem of a ComputeRefused on the form; the status to answer with."""
    apply_problems(form, refused.problems)
    return refused.status
