"""A server's firewall while it exists: attach, switch or detach its rule set, and the apply
operations that bring every change to the cloud (operations/firewalls.py).

`instance_firewall_set` is the customer's request; `firewall_applies` is what a change of a rule set's
rules, or the reconciler finding drift, asks for. Both run inside the caller's transaction and
enqueue after its commit. A server in a zone whose cloud cannot enforce rules gets none (the pages
say so in the zone's words).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.http import HttpRequest

from portal.audit.models import AuditAction
from portal.compute.models import ACTIVE_STATES, Action, FirewallRuleSet, Instance, InstanceStatus, Operation
from portal.compute.operations.firewalls import FOLLOWS_RULES, firewall_refusal, new_applies, pending_apply
from portal.compute.services.common import ComputeRefused, Problem, audit, enqueue_on_commit, lock_project
from portal.tenancy.access import Access, Perm

S = InstanceStatus
# A server whose firewall can be set by hand: it exists in the cloud and is settled.
SETTABLE = frozenset({S.RUNNING, S.STOPPED})


def firewall_applies(instances: Iterable[Instance], *, requested_by=None) -> list[Operation]:
    """An apply for each of these servers whose zone enforces rules (operations/firewalls.py's
    `new_applies`), enqueued after the caller's transaction commits."""
    operations = new_applies(instances, requested_by=requested_by)
    enqueue_on_commit(operations)
    return operations


def rule_set_applies(rule_set: FirewallRuleSet, *, requested_by=None) -> list[Operation]:
    """After its rules changed: an apply for every server that uses the rule set."""
    servers = rule_set.instances.filter(status__in=FOLLOWS_RULES).select_related("zone").order_by("pk")
    return firewall_applies(servers, requested_by=requested_by)


@transaction.atomic
def instance_firewall_set(
    *,
    access: Access,
    instance: Instance,
    rule_set: FirewallRuleSet | None,
    request: HttpRequest | None = None,
) -> Operation | None:
    """Attach `rule_set` to a running or stopped server, switch to it, or (None) detach its
    firewall: all inbound traffic allowed again, as for a server launched without one. The rules
    reach the cloud by the operation returned. Asking for what the server already has changes
    nothing and returns the apply under way for it, if any. Every problem at once, as ComputeRefused."""
    access.require(Perm.RESOURCE_OPERATE)
    project = lock_project(access)
    locked = (
        Instance.objects.select_for_update(of=("self",))
        .select_related("zone", "firewall")
        .filter(project=project, pk=instance.pk)
        .exclude(status=S.TERMINATED)
        .first()
    )
    if locked is None:
        raise ComputeRefused("Choose one of the project's servers.", "instance", 404)
    problems = []
    if rule_set is not None and not FirewallRuleSet.objects.filter(project=project, pk=rule_set.pk).exists():
        problems.append(Problem("firewall", "Choose one of the project's firewalls.", 400))
    if locked.status not in SETTABLE:
        problems.append(
            Problem(
                None,
                f"{locked.name} is {locked.get_status_display().lower()}: a firewall can be attached "
                "to a running or stopped server.",
                409,
            )
        )
    if refusal := firewall_refusal(locked.zone):
        problems.append(Problem(None, refusal, 409))
    if problems:
        raise ComputeRefused.of(problems)
    new_id = rule_set.pk if rule_set is not None else None
    if locked.firewall_id == new_id:
        return locked.operations.filter(action=Action.FIREWALL_APPLY, state__in=ACTIVE_STATES).first()
    old = locked.firewall.name if locked.firewall else None
    locked.firewall_id = new_id
    locked.save(update_fields=["firewall", "updated_at"])
    audit(
        access,
        AuditAction.INSTANCE_FIREWALL,
        locked,
        {"firewall": [old, rule_set.name if rule_set else None]},
        request,
    )
    (op, *_) = firewall_applies([locked], requested_by=access.membership.user) or [pending_apply(locked)]
    return op
