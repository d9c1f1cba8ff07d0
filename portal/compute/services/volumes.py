"""Writes for a project's volumes: each takes `access`, checks the role, validates, changes rows
under the project lock (quota and "is it attached?" answers cannot race), records an audit event,
and creates the operation that asks the cloud (compute/operations/volumes.py), queued on commit.
Refusals are ComputeRefused (every broken rule at once), QuotaExceeded or PlacementDenied, and a
refused request changes nothing.

The status set here shows the request under way (creating, attaching…); what the cloud confirmed
is set by the operation, and so is the billing: a volume is billed while it exists in the cloud.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from portal.audit.models import AuditAction
from portal.catalog.models import Zone
from portal.compute.backends import BackendError, Capability, get_backend, not_available
from portal.compute.models import (
    Action,
    Instance,
    InstanceStatus,
    Operation,
    OperationState,
    Volume,
    VolumeStatus,
)
from portal.compute.models.operations import operation_deadline
from portal.compute.pricing import monthly
from portal.compute.quota import check_quota
from portal.compute.services.common import ComputeRefused, Problem, audit, enqueue_on_commit, lock_project
from portal.residency.placement import PlacementDenied, placement_decision
from portal.residency.services import record_placement_denied
from portal.tenancy.access import Access, Perm

# Same rule as server names: a volume's name is its label in the cloud.
VOLUME_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
VOLUME_NAME_RULE = (
    "Use lower-case letters, digits and hyphens (not at the start or end), at most 63 characters."
)
VOLUME_NAME_MAX_LENGTH = 63
VOLUME_MIN_GIB, VOLUME_MAX_GIB = 1, 16384
ATTACHABLE = frozenset({InstanceStatus.RUNNING, InstanceStatus.STOPPED})
VS = VolumeStatus
BUSY = {
    VS.CREATING: "being created",
    VS.ATTACHING: "being attached",
    VS.DETACHING: "being detached",
    VS.EXTENDING: "being extended",
    VS.DELETING: "being deleted",
}


def zone_refusal(zone: Zone, capability: Capability = Capability.VOLUMES) -> str:
    """Why `zone` cannot do `capability` ("Volumes are not available in ams1-b."), or "" when it
    can: the one question pages, the API and these services ask."""
    try:
        capabilities = get_backend(zone.backend).capabilities(zone.code)
    except BackendError as error:
        return error.user_message
    return "" if capability in capabilities else not_available(capability, zone.code).user_message


def volumes_per_server() -> int:
    return settings.COMPUTE_VOLUMES_PER_SERVER


def extend_price_delta(volume: Volume, size_gib: int) -> Decimal:
    """What growing `volume` to `size_gib` adds to its price per month."""
    return monthly(Decimal(size_gib - volume.size_gib) * settings.PORTAL_VOLUME_PRICE_GIB_HOUR)


def _operation(access: Access, volume: Volume, action: Action, params: dict | None = None) -> Operation:
    op = Operation.objects.create(
        volume=volume,
        action=action,
        params=params or {},
        requested_by=access.membership.user,
        deadline=operation_deadline(),
        step_token=uuid.uuid4().hex,
    )
    enqueue_on_commit([op])
    return op


def _under_way(volume: Volume, action: Action) -> Operation | None:
    """The same request, still under way: asking again returns it and changes nothing."""
    return volume.operations.filter(
        action=action, state__in=[OperationState.PENDING, OperationState.RUNNING]
    ).first()


def _state_problem(volume: Volume, allowed: set[str], doing: str) -> Problem | None:
    if volume.status in allowed:
        return None
    if volume.status in BUSY:
        return Problem(None, f"{volume.name} is {BUSY[volume.status]}: wait until that is done.", 409)
    if volume.status == VS.ERROR:
        return Problem(
            None, f"{volume.name} is in error ({volume.fault_message or 'see its page'}): delete it.", 409
        )
    return Problem(None, f"{volume.name} is {volume.get_status_display().lower()}: it can't be {doing}.", 409)


def volume_create(
    *, access: Access, name: str, zone: Zone, size_gib: int, request: HttpRequest | None = None
) -> Operation:
    """A new volume in `zone`, created in its cloud by the operation returned. Raises
    ComputeRefused, QuotaExceeded or PlacementDenied (audited). The policy is checked before the
    zone's status, so a forbidden zone is always audited."""
    access.require(Perm.RESOURCE_CREATE)
    name = (name or "").strip()
    problems = []  # all at once, not one per attempt
    if not VOLUME_NAME_RE.match(name) or len(name) > VOLUME_NAME_MAX_LENGTH:
        problems.append(Problem("name", VOLUME_NAME_RULE))
    if not VOLUME_MIN_GIB <= size_gib <= VOLUME_MAX_GIB:
        problems.append(Problem("size_gib", f"A volume is {VOLUME_MIN_GIB} to {VOLUME_MAX_GIB} GiB."))
    if not zone.region.is_active:
        problems.append(Problem("zone", "Choose one of the zones listed."))
    if problems:
        raise ComputeRefused.of(problems)
    with transaction.atomic():
        project = lock_project(access)
        decision = placement_decision(project, zone, lock=True)
        if decision.allowed:
            if not zone.accepts_launches:
                problems.append(Problem("zone", zone.refusal, 409))
            elif refusal := zone_refusal(zone):
                problems.append(Problem("zone", refusal, 409))
            if Volume.objects.existing().filter(project=project, name=name).exists():
                problems.append(Problem("name", f"The project already has a volume named “{name}”.", 409))
            if problems:
                raise ComputeRefused.of(problems)
            check_quota(project, volume_gib=size_gib)
            volume = Volume.objects.create(
                project=project,
                name=name,
                zone=zone,
                size_gib=size_gib,
                status=VS.CREATING,
                created_by=access.membership.user,
            )
            audit(
                access,
                AuditAction.VOLUME_CREATED,
                volume,
                {"size": [None, f"{size_gib} GiB"], "zone": [None, zone.code]},
                request,
            )
            return _operation(access, volume, Action.VOLUME_CREATE)
    record_placement_denied(
        access=access,
        zone=zone,
        attempted=f"create volume {name} ({size_gib} GiB) in {zone.code}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)


def _locked_volume(access: Access, volume: Volume) -> Volume:
    locked = (
        Volume.objects.existing()
        .select_for_update(of=("self",))
        .select_related("zone", "attached_to", "pending_server")
        .filter(project=access.project, pk=volume.pk)
        .first()
    )
    if locked is None:
        raise ComputeRefused(f"Volume {volume.name} has been deleted.", status=409)
    return locked


def attach_problems(volume: Volume, instance: Instance) -> list[Problem]:
    """Every reason `volume` can't be attached to `instance` now (call with both rows locked)."""
    problems = []
    if refusal := zone_refusal(volume.zone):
        problems.append(Problem(None, refusal, 409))
    if volume.status == VS.IN_USE and volume.attached_to_id == instance.pk:
        problems.append(Problem("instance", f"{volume.name} is already attached to {instance.name}.", 409))
    elif volume.status == VS.IN_USE:
        problems.append(
            Problem(None, f"{volume.name} is attached to {volume.attached_to.name}: detach it first.", 409)
        )
    elif volume.pending_server_id not in (None, instance.pk):
        problems.append(
            Problem(
                None, f"{volume.name} is to be attached to {volume.pending_server.name} once it runs.", 409
            )
        )
    elif problem := _state_problem(volume, {VS.AVAILABLE}, "attached"):
        problems.append(problem)
    if instance.zone_id != volume.zone_id:
        problems.append(
            Problem(
                "instance",
                f"{volume.name} is in {volume.zone.code} and {instance.name} in {instance.zone.code}: "
                "a volume can only be attached to a server in its own zone.",
                409,
            )
        )
    if instance.status not in ATTACHABLE:
        problems.append(
            Problem(
                "instance",
                f"{instance.name} is {instance.get_status_display().lower()}: volumes can be attached "
                "to running or stopped servers.",
                409,
            )
        )
    limit = volumes_per_server()
    attached = Volume.objects.existing().filter(attached_to=instance).exclude(pk=volume.pk).count()
    if attached >= limit:
        problems.append(
            Problem(
                "instance",
                f"{instance.name} already has {attached} volumes: a server in {instance.zone.code} takes "
                f"at most {limit}. Detach one first.",
                409,
            )
        )
    return problems


def volume_attach(
    *, access: Access, volume: Volume, instance: Instance, request: HttpRequest | None = None
) -> Operation:
    """Attach to a running or stopped server in the same zone (the cloud hot-plugs it). Asking
    again while the attach is under way returns that operation. The placement decision applies: a
    zone the policy no longer allows takes no new attachments."""
    access.require(Perm.RESOURCE_OPERATE)
    with transaction.atomic():
        project = lock_project(access)
        volume = _locked_volume(access, volume)
        instance = (
            Instance.objects.select_for_update(of=("self",))
            .select_related("zone")
            .filter(project=project, pk=instance.pk)
            .exclude(status=InstanceStatus.TERMINATED)
            .first()
        )
        if instance is None:
            raise ComputeRefused("Choose one of the project's servers.", "instance")
        same = volume.status == VS.ATTACHING and volume.attached_to_id == instance.pk
        if same and (running := _under_way(volume, Action.VOLUME_ATTACH)):
            return running
        if problems := attach_problems(volume, instance):
            raise ComputeRefused.of(problems)
        decision = placement_decision(project, volume.zone, lock=True)
        if decision.allowed:
            # Attached by hand to the server it waited for: no launch attach follows any more.
            volume.status, volume.attached_to, volume.pending_server = VS.ATTACHING, instance, None
            volume.save(update_fields=["status", "attached_to", "pending_server", "updated_at"])
            audit(access, AuditAction.VOLUME_ATTACHED, volume, {"server": [None, instance.name]}, request)
            return _operation(
                access,
                volume,
                Action.VOLUME_ATTACH,
                {"instance_id": str(instance.pk), "server_id": instance.backend_id},
            )
    record_placement_denied(
        access=access,
        zone=volume.zone,
        attempted=f"attach volume {volume.name} to {instance.name}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)


@transaction.atomic
def volume_detach(*, access: Access, volume: Volume, request: HttpRequest | None = None) -> Operation:
    """Detach from its server. Asking again while the detach is under way returns that operation."""
    access.require(Perm.RESOURCE_OPERATE)
    lock_project(access)
    volume = _locked_volume(access, volume)
    if volume.status == VS.DETACHING and (running := _under_way(volume, Action.VOLUME_DETACH)):
        return running
    if volume.status == VS.AVAILABLE:
        raise ComputeRefused(f"{volume.name} is not attached to a server.", status=409)
    if problem := _state_problem(volume, {VS.IN_USE}, "detached"):
        raise ComputeRefused.of([problem])
    server = volume.attached_to
    volume.status = VS.DETACHING
    volume.save(update_fields=["status", "updated_at"])
    audit(access, AuditAction.VOLUME_DETACHED, volume, {"server": [server.name, None]}, request)
    return _operation(
        access, volume, Action.VOLUME_DETACH, {"instance_id": str(server.pk), "server_id": server.backend_id}
    )


def volume_extend(
    *, access: Access, volume: Volume, size_gib: int, request: HttpRequest | None = None
) -> Operation:
    """Grow the volume to `size_gib` (volumes only grow), attached or not. It is billed at the new
    size from when the cloud confirms it; quota counts the new size at once."""
    access.require(Perm.RESOURCE_OPERATE)
    with transaction.atomic():
        project = lock_project(access)
        volume = _locked_volume(access, volume)
        running = _under_way(volume, Action.VOLUME_EXTEND) if volume.status == VS.EXTENDING else None
        if running is not None and running.params.get("size_gib") == size_gib:
            return running
        problems = []
        if size_gib <= volume.size_gib:
            problems.append(
                Problem(
                    "size_gib",
                    f"{volume.name} is {volume.size_gib} GiB: choose a larger size (volumes only grow).",
                )
            )
        elif size_gib > VOLUME_MAX_GIB:
            problems.append(Problem("size_gib", f"A volume is at most {VOLUME_MAX_GIB} GiB."))
        if refusal := zone_refusal(volume.zone, Capability.VOLUME_EXTEND):
            problems.append(Problem(None, refusal, 409))
        if problem := _state_problem(volume, {VS.AVAILABLE, VS.IN_USE}, "extended"):
            problems.append(problem)
        if problems:
            raise ComputeRefused.of(problems)
        check_quota(project, volume_gib=size_gib - volume.size_gib)
        was = volume.status
        volume.status = VS.EXTENDING
        volume.save(update_fields=["status", "updated_at"])
        audit(
            access,
            AuditAction.VOLUME_EXTENDED,
            volume,
            {"size": [f"{volume.size_gib} GiB", f"{size_gib} GiB"]},
            request,
        )
        return _operation(access, volume, Action.VOLUME_EXTEND, {"size_gib": size_gib, "was": was})


@transaction.atomic
def volume_delete(*, access: Access, volume: Volume, request: HttpRequest | None = None) -> Operation:
    """Delete the volume in the cloud; the row stays (deleted) for the audit trail and usage
    history. Billed until the cloud confirms it is gone. A volume in error can be deleted."""
    access.require(Perm.RESOURCE_OPERATE)
    lock_project(access)
    volume = _locked_volume(access, volume)
    if volume.status == VS.DELETING and (running := _under_way(volume, Action.VOLUME_DELETE)):
        return running
    if volume.status in (VS.IN_USE, VS.ATTACHING) and volume.attached_to is not None:
        raise ComputeRefused(
            f"{volume.name} is attached to {volume.attached_to.name}: detach it first.", status=409
        )
    if problem := _state_problem(volume, {VS.AVAILABLE, VS.ERROR}, "deleted"):
        raise ComputeRefused.of([problem])
    changes = {"size": [f"{volume.size_gib} GiB", None]}
    if volume.pending_server is not None:  # chosen for a launch: the customer changed their mind
        changes["waiting for"] = [volume.pending_server.name, None]
    volume.status, volume.pending_server = VS.DELETING, None
    volume.save(update_fields=["status", "pending_server", "updated_at"])
    audit(access, AuditAction.VOLUME_DELETED, volume, changes, request)
    return _operation(access, volume, Action.VOLUME_DELETE)
