"""Writes for a project's snapshots, backups and its own images: each takes `access`, checks the
role, validates (every broken rule at once), changes rows under the project lock, records an audit
event and creates the operation that asks the cloud (compute/operations/snapshots.py), queued on
commit. A refused request changes nothing.

A snapshot stays in the zone of what it was taken of (the cloud keeps it there); taking one is a
placement in that zone, so a residency policy that no longer allows the zone refuses it.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.http import HttpRequest

from portal.audit.models import AuditAction
from portal.catalog.models import Image
from portal.compute.models import (
    Action,
    BackupSchedule,
    Instance,
    InstanceStatus,
    Operation,
    OperationState,
    Snapshot,
    SnapshotKind,
    SnapshotStatus,
    Volume,
)
from portal.compute.models.operations import operation_deadline
from portal.compute.services.common import (
    LABEL_RE,
    ComputeRefused,
    Problem,
    audit,
    enqueue_on_commit,
    lock_project,
)
from portal.compute.snapshot_rules import (
    default_snapshot_name,
    server_snapshot_problems,
    volume_snapshot_problems,
)
from portal.residency.placement import PlacementDenied, placement_decision
from portal.residency.services import record_placement_denied
from portal.tenancy.access import Access, Perm

SNAPSHOT_NAME_MAX_LENGTH = 63
S = InstanceStatus
SS = SnapshotStatus


def snapshot_name_problems(name: str) -> list[Problem]:
    if not name:
        return [Problem("name", "Give the snapshot a name.")]
    if len(name) > SNAPSHOT_NAME_MAX_LENGTH:
        return [Problem("name", f"The name can be at most {SNAPSHOT_NAME_MAX_LENGTH} characters.")]
    if not LABEL_RE.match(name):
        return [Problem("name", "The name cannot contain line breaks or control characters.")]
    return []


def _operation(access: Access | None, snapshot: Snapshot, action: Action) -> Operation:
    op = Operation.objects.create(
        snapshot=snapshot,
        action=action,
        requested_by=access.membership.user if access else None,
        deadline=operation_deadline(),
        step_token=uuid.uuid4().hex,
    )
    enqueue_on_commit([op])
    return op


def snapshot_create(
    *,
    access: Access,
    instance: Instance | None = None,
    volume: Volume | None = None,
    name: str = "",
    request: HttpRequest | None = None,
) -> Operation:
    """A snapshot of a server's disk (an image new servers boot from) or of a volume, taken in the
    cloud by the operation returned. Raises ComputeRefused (every reason at once) or
    PlacementDenied (audited)."""
    access.require(Perm.RESOURCE_CREATE)
    if (instance is None) == (volume is None):
        raise ComputeRefused("Choose the server or the volume to snapshot.")
    source = instance or volume
    if source.project_id != access.project.pk:
        raise ComputeRefused("Choose a server or volume of this project.", status=404)
    name = (name or "").strip() or default_snapshot_name(source.name)
    problems = snapshot_name_problems(name)
    with transaction.atomic():
        project = lock_project(access)
        if instance is not None:
            source = Instance.objects.select_for_update().select_related("zone__region").get(pk=instance.pk)
        else:
            source = Volume.objects.select_for_update().select_related("zone__region").get(pk=volume.pk)
        decision = placement_decision(project, source.zone, lock=True)
        if decision.allowed:
            problems += (
                server_snapshot_problems(source) if instance is not None else volume_snapshot_problems(source)
            )
            if Snapshot.objects.existing().filter(project=project, name=name).exists():
                problems.append(Problem("name", f"The project already has a snapshot named “{name}”.", 409))
            if problems:
                raise ComputeRefused.of(problems)
            snapshot = Snapshot.objects.create(
                project=project,
                zone=source.zone,
                name=name,
                kind=SnapshotKind.SERVER if instance is not None else SnapshotKind.VOLUME,
                source_instance=source if instance is not None else None,
                source_volume=source if volume is not None else None,
                created_by=access.membership.user,
            )
            audit(
                access,
                AuditAction.SNAPSHOT_CREATED,
                snapshot,
                {"of": [None, source.name], "zone": [None, source.zone.code]},
                request,
            )
            return _operation(access, snapshot, Action.SNAPSHOT_CREATE)
    if problems:  # bad input is the customer's to fix first, whatever the policy
        raise ComputeRefused.of(problems)
    record_placement_denied(
        access=access,
        zone=source.zone,
        attempted=f"snapshot {source.name} in {source.zone.code}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)


def _locked_snapshot(access: Access, snapshot: Snapshot) -> Snapshot:
    locked = (
        Snapshot.objects.select_for_update(of=("self",))
        .select_related("zone")
        .filter(project=access.project, pk=snapshot.pk)
        .first()
    )
    if locked is None or locked.status == SS.DELETED:
        raise ComputeRefused(f"Snapshot {snapshot.name} has been deleted.", status=409)
    return locked


@transaction.atomic
def snapshot_delete(*, access: Access, snapshot: Snapshot, request: HttpRequest | None = None) -> Operation:
    """Delete the snapshot (and the image it is) in the cloud; the row stays (deleted) for the
    audit trail and usage history. Billed until the cloud confirms it is gone. Asking again while
    it is being deleted returns that operation."""
    access.require(Perm.RESOURCE_OPERATE)
    lock_project(access)
    snapshot = _locked_snapshot(access, snapshot)
    if snapshot.status == SS.DELETING:
        running = snapshot.operations.filter(
            action=Action.SNAPSHOT_DELETE, state__in=[OperationState.PENDING, OperationState.RUNNING]
        ).first()
        if running:
            return running
    if snapshot.status == SS.CREATING:
        raise ComputeRefused(
            f"{snapshot.name} is still being taken: delete it once that is done.", status=409
        )
    snapshot.status = SS.DELETING
    snapshot.save(update_fields=["status", "updated_at"])
    # No new server boots from an image on its way out.
    Image.objects.filter(snapshot=snapshot).update(is_active=False)
    audit(
        access, AuditAction.SNAPSHOT_DELETED, snapshot, {"size": [f"{snapshot.size_gib} GiB", None]}, request
    )
    return _operation(access, snapshot, Action.SNAPSHOT_DELETE)


def image_problems(image: Image) -> list[Problem]:
    """Why a project's image can't be deleted (every reason), [] when it can. Servers launched
    from it whose backups are on need it (a backup of such a server may be stored against it)."""
    problems = []
    snapshot = getattr(image, "snapshot", None)
    if snapshot is None:
        problems.append(
            Problem(None, f"{image.name} was provided by your operator: ask them to remove it.", 409)
        )
    elif snapshot.status == SS.CREATING:
        problems.append(
            Problem(None, f"{image.name} is still being taken: delete it once that is done.", 409)
        )
    scheduled = (
        BackupSchedule.objects.filter(instance__image=image, enabled=True)
        .exclude(instance__status=S.TERMINATED)
        .select_related("instance")
        .order_by("instance__name")
    )
    for schedule in scheduled:
        problems.append(
            Problem(
                None,
                f"{schedule.instance.name} was launched from {image.name} and has scheduled backups, which "
                "need it: turn its backups off first.",
                409,
            )
        )
    return problems


def image_delete(*, access: Access, image: Image, request: HttpRequest | None = None) -> Operation:
    """Delete one of the project's own images: the snapshot it is goes, in the cloud too."""
    access.require(Perm.RESOURCE_OPERATE)
    if image.project_id != access.project.pk:
        raise ComputeRefused("Choose an image of this project.", status=404)
    with transaction.atomic():
        lock_project(access)
        if problems := image_problems(image):
            raise ComputeRefused.of(problems)
        return snapshot_delete(access=access, snapshot=image.snapshot, request=request)
