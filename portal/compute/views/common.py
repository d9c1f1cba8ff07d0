from __future__ import annotations

from django.http import Http404

from portal.compute.models import Instance
from portal.tenancy.access import Access


def get_instance(access: Access, instance_id) -> Instance:
    """An instance of the project in `access`, or 404 (also for terminated ones)."""
    instance = (
        Instance.objects.with_catalog()
        .select_related("firewall")
        .filter(project=access.project, pk=instance_id)
        .exclude(status="terminated")
        .first()
    )
    if instance is None:
        raise Http404("No such server.")
    instance.project = access.project  # loaded with its organization already
    return instance


def apply_problems(form, problems) -> None:
    """Each problem next to its field (or at the top), unless the field already shows one: the
    form could not parse it, and that message says what to fix first."""
    for problem in problems:
        field = problem.field if problem.field in form.fields else None
        if field is None or field not in form.errors:
            form.add_error(field, problem.message)


def refusal_status(form, refused) -> int:
    """Show every problem of a ComputeRefused on the form; the status to answer with."""
    apply_problems(form, refused.problems)
    return refused.status
