"""The kind of operation that makes a server's firewall rules the cloud's: `firewall_apply`.

Its submit reads the rules the portal holds for the server *now* (its rule set's, or all inbound
traffic for a server without one) and hands them to `apply_firewall`, which returns once the cloud
enforces them and changes nothing when they are already there. So the operation is safe to run
again at any point: a worker killed half-way leaves the reconciler an operation whose next step
applies the same (or newer) rules again. Its look reads `server_firewall` back: done when the cloud
holds what was applied or what the portal holds now. The server shows "Applying" from the request
(the service sets it) and "Applied <time>" or "Failed: <reason>" from here, unless another apply
for it is still under way (that one decides).
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.utils import timezone

from portal.compute.backends import (
    BackendError,
    Capability,
    ComputeBackend,
    NotFound,
    get_backend,
    not_available,
)
from portal.compute.backends.firewall import ALL_INBOUND, rules_hash
from portal.compute.models import (
    ACTIVE_STATES,
    Action,
    FirewallRule,
    FirewallState,
    Instance,
    InstanceStatus,
    Operation,
    OperationState,
)
from portal.compute.models.operations import operation_deadline
from portal.compute.operations.kinds import Answers, Kind, Progress, each

log = logging.getLogger(__name__)
HASH = "rules_hash"
S = InstanceStatus
# A server whose rules follow a change of its rule set: it exists in the cloud. (A launch under
# way reads the rules when it is submitted, and the reconciler checks them once it runs.)
FOLLOWS_RULES = frozenset(
    {S.RUNNING, S.STOPPED, S.STOPPING, S.STARTING, S.REBOOTING, S.RESIZING, S.REBUILDING}
)


def firewall_refusal(zone) -> str:
    """Why `zone` cannot enforce firewall rules ("Firewall rules are not available in lv1-a."),
    or "" when it can: the one question pages, the API and the services ask."""
    try:
        capabilities = get_backend(zone.backend).capabilities(zone.code)
    except BackendError as error:
        return error.user_message
    return (
        ""
        if Capability.FIREWALL in capabilities
        else not_available(Capability.FIREWALL, zone.code).user_message
    )


def pending_apply(instance: Instance) -> Operation | None:
    """An apply no worker has started: it reads the rules when one does, so it carries any change."""
    return instance.operations.filter(action=Action.FIREWALL_APPLY, state=OperationState.PENDING).first()


def new_applies(instances, *, requested_by=None) -> list[Operation]:
    """An apply for each of these servers whose zone enforces rules (one no worker has started is
    reused, and not returned), each server shown as "Applying". The caller enqueues them."""
    operations, refusals = [], {}
    for instance in instances:
        if instance.status not in FOLLOWS_RULES or not instance.backend_id:
            continue
        if instance.zone_id not in refusals:
            refusals[instance.zone_id] = firewall_refusal(instance.zone)
        if refusals[instance.zone_id]:
            continue
        if pending_apply(instance) is None:
            operations.append(
                Operation.objects.create(
                    instance=instance,
                    action=Action.FIREWALL_APPLY,
                    requested_by=requested_by,
                    deadline=operation_deadline(),
                    step_token=uuid.uuid4().hex,
                )
            )
        Instance.objects.filter(pk=instance.pk).update(
            firewall_state=FirewallState.APPLYING, firewall_message=""
        )
    return operations


def desired_rules(instance: Instance) -> tuple[dict, ...]:
    """The inbound rules the portal holds for the server: its rule set's, or all inbound traffic
    (what a server launched without a firewall has)."""
    if instance.firewall_id is None:
        return ALL_INBOUND
    return tuple(
        FirewallRule.objects.filter(rule_set_id=instance.firewall_id)
        .order_by("pk")
        .values("protocol", "port_from", "port_to", "source")
    )


def _known_hash(rules) -> str | None:
    """The fingerprint of rules read from the cloud, or None for rules the portal cannot write
    (a rule allowing another group's members): never the same as the portal's."""
    if rules is None:
        return None
    try:
        return rules_hash(rules)
    except BackendError:
        return None


def _backend_id(op: Operation) -> str:
    if not op.instance.backend_id:
        raise NotFound("The server was never created in the cloud.", "no backend id")
    return op.instance.backend_id


def _apply(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    def call(op: Operation) -> str:
        instance = Instance.objects.only("pk", "firewall_id").get(pk=op.instance_id)  # its rule set now
        rules = desired_rules(instance)
        backend.apply_firewall(_backend_id(op), rules)
        return rules_hash(rules)

    return each(ops, call)


def _record_hash(accepted: list[tuple[Operation, str]]) -> None:
    for op, digest in accepted:
        op.params = {**op.params, HASH: digest}
        Operation.objects.filter(pk=op.pk).update(params=op.params)


def _look(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    return each(ops, lambda op: backend.server_firewall(_backend_id(op)))


def _progress(op: Operation, seen) -> tuple[Progress, str]:
    digest = _known_hash(seen)
    if digest is not None and digest in (op.params.get(HASH), rules_hash(desired_rules(op.instance))):
        return Progress.DONE, ""
    return Progress.FAILED, "The cloud holds other rules than those just applied; they will be applied again"


def _others_under_way(op: Operation) -> bool:
    return (
        Operation.objects.filter(
            instance_id=op.instance_id, action=Action.FIREWALL_APPLY, state__in=ACTIVE_STATES
        )
        .exclude(pk=op.pk)
        .exists()
    )


def _succeed(finished: list[tuple[Operation, object]]) -> None:
    with transaction.atomic():
        closed = Operation.objects.close_open([op.pk for op, _ in finished], OperationState.SUCCEEDED)
        now = timezone.now()
        for op, seen in finished:
            if op.pk in closed and not _others_under_way(op):
                Instance.objects.filter(pk=op.instance_id).update(
                    firewall_state=FirewallState.APPLIED,
                    firewall_applied_hash=_known_hash(seen) or "",
                    firewall_applied_at=now,
                    firewall_message="",
                )


def _fail(op: Operation, message: str, detail: str) -> None:
    with transaction.atomic():
        if not op.close(OperationState.FAILED, message=message, detail=detail):
            return
        log.warning("firewall apply failed", extra={"operation": str(op.pk), "detail": detail})
        if not _others_under_way(op):
            Instance.objects.filter(pk=op.instance_id).update(
                firewall_state=FirewallState.FAILED, firewall_message=message[:500]
            )


def _terminated(op: Operation) -> bool:
    return op.instance.status in (InstanceStatus.TERMINATING, InstanceStatus.TERMINATED)


def _cancel(backend: ComputeBackend, op: Operation) -> None:
    op.close(OperationState.FAILED, message="The server was terminated.", detail="cancelled: terminated")


FIREWALL_OPERATIONS: dict[str, Kind] = {
    Action.FIREWALL_APPLY: Kind(
        submit=_apply,
        look=_look,
        progress=_progress,
        succeed=_succeed,
        fail=_fail,
        submitted=_record_hash,
        cancelled=_terminated,
        cancel=_cancel,
    )
}
