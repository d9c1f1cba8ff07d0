"""The kinds of operation that change snapshots (and backups): take one, delete one.

A snapshot's status shows the request under way (`creating`, `deleting`, set by the service) and
becomes what the cloud confirmed only here, in `succeed`, with its billing in the same
transaction: a snapshot is billed from the cloud's "available" until the cloud no longer finds it.
A server snapshot (or backup) that became available is also a project image (`Snapshot.image`),
which the launch path boots through `Image.backend_refs` → `ServerSpec.image_backend_id`.

Creation is idempotent by the snapshot's UUID in the cloud's metadata (`find_snapshot`): a submit
repeated after a worker died between the cloud call and saving its answer adopts the first one.
Retention: once a backup succeeded, the oldest of its schedule beyond `keep` are deleted — never
before (a failed backup deletes nothing).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from portal.catalog.models import Image
from portal.compute import notify
from portal.compute.backends import (
    BackendError,
    ComputeBackend,
    NotFound,
    Rejected,
    SnapshotCloudState,
    SnapshotCopySpec,
    SnapshotSource,
    SnapshotSpec,
    SnapshotState,
    get_backend,
)
from portal.compute.models import (
    Action,
    BackupSchedule,
    Operation,
    OperationState,
    Snapshot,
    SnapshotKind,
    SnapshotStatus,
)
from portal.compute.models.operations import operation_deadline
from portal.compute.models.snapshots import BOOTABLE_KINDS
from portal.compute.operations.kinds import Answers, Kind, Progress, each
from portal.metering.segments import sync_snapshots

log = logging.getLogger(__name__)
C = SnapshotCloudState
SS = SnapshotStatus
GONE_MESSAGE = "The snapshot no longer exists in the cloud."


def snapshot_spec(snapshot: Snapshot) -> SnapshotSpec:
    """What the cloud is asked to keep: the source's id in the cloud (Rejected when it has none)."""
    if snapshot.kind in BOOTABLE_KINDS:
        source, backend_id = SnapshotSource.SERVER, getattr(snapshot.source_instance, "backend_id", "")
    else:
        source, backend_id = SnapshotSource.VOLUME, getattr(snapshot.source_volume, "backend_id", "")
    if not backend_id:
        raise Rejected(
            f"The {source.value} to snapshot no longer exists in the cloud.", "source has no backend id"
        )
    return SnapshotSpec(
        idempotency_key=str(snapshot.pk),
        name=snapshot.name,
        zone=snapshot.zone.code,
        source=source,
        source_id=backend_id,
    )


# --- submit -----------------------------------------------------------------------------------


def _create(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    # Adopts a snapshot already made with this UUID: a retried creation makes no second.
    return each(
        ops,
        lambda op: (
            backend.find_snapshot(op.snapshot.zone.code, str(op.snapshot_id))
            or backend.create_snapshot(snapshot_spec(op.snapshot))
        ),
    )


def _copy(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    """A copy into another zone (Snapshot.copied_from): adopts one already made with its UUID."""

    def call(op: Operation) -> SnapshotState:
        copy = op.snapshot
        found = backend.find_snapshot(copy.zone.code, str(copy.pk))
        if found is not None:
            return found
        source = copy.copied_from
        if source is None or not source.backend_id or source.status != SS.AVAILABLE:
            raise Rejected("The image to copy no longer exists.", "copy source gone from the portal")
        return backend.copy_snapshot(
            SnapshotCopySpec(
                idempotency_key=str(copy.pk), name=copy.name, zone=copy.zone.code, source_id=source.backend_id
            )
        )

    return each(ops, call)


def _record_snapshot_ids(accepted: list[tuple[Operation, SnapshotState]]) -> None:
    new = []
    for op, state in accepted:
        if not op.snapshot.backend_id:
            op.snapshot.backend_id = state.backend_id
            new.append(op.snapshot)
    Snapshot.objects.bulk_update(new, ["backend_id"])


def _snapshot_id(backend: ComputeBackend, snapshot: Snapshot) -> str:
    if not snapshot.backend_id:
        found = backend.find_snapshot(snapshot.zone.code, str(snapshot.pk))
        if found is None:
            raise NotFound("The snapshot was never created in the cloud.", "no backend id")
        Snapshot.objects.filter(pk=snapshot.pk, backend_id="").update(backend_id=found.backend_id)
        snapshot.backend_id = found.backend_id
    return snapshot.backend_id


def _delete(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    def call(op: Operation) -> None:
        try:
            backend.delete_snapshot(_snapshot_id(backend, op.snapshot))
        except NotFound:
            return None  # never reached the cloud, or already gone: nothing to delete

    return each(ops, call)


# --- look and progress ------------------------------------------------------------------------


def _look(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    return each(
        ops,
        lambda op: (
            backend.get_snapshot(op.snapshot.backend_id)
            if op.snapshot.backend_id
            else NotFound("The snapshot was never created.", "no backend id")
        ),
    )


def _checked(done: Callable[[SnapshotState], bool]):
    def progress(op: Operation, state: SnapshotState) -> tuple[Progress, str]:
        if state.state == C.ERROR:
            return Progress.FAILED, state.fault or "The cloud could not take the snapshot"
        return (Progress.DONE if done(state) else Progress.WAITING), ""

    return progress


_available = _checked(lambda s: s.state == C.AVAILABLE)
_deleted = _checked(lambda s: False)  # a deletion ends when the cloud no longer finds it


# --- succeed ----------------------------------------------------------------------------------

FIELDS = [
    "status",
    "backend_id",
    "image_ref",
    "image",
    "size_gib",
    "min_disk_gib",
    "fault_message",
    "deleted_at",
    "updated_at",
]


def _locked(ids) -> dict:
    return {
        snapshot.pk: snapshot
        for snapshot in Snapshot.objects.select_for_update(of=("self",))
        .select_related("project", "zone", "source_instance__image", "schedule", "copied_from__image")
        .filter(pk__in=list(ids))
        .order_by("pk")
    }


def _image_of(snapshot: Snapshot, state: SnapshotState) -> Image:
    """The project image a server snapshot is: it boots in the snapshot's zone only (where the
    cloud holds it), with the source's OS and licence (a Windows snapshot still runs Windows)."""
    source_image = snapshot.source_instance.image if snapshot.source_instance else None
    version = f"{snapshot.get_kind_display()} of {snapshot.source_name}"
    if snapshot.copied_from is not None:  # a copy is what it copies, in another region
        source_image = snapshot.copied_from.image or source_image
        version = f"Copy of {snapshot.copied_from.name}"
    image = Image.objects.create(
        name=snapshot.name[:80],
        os_family=source_image.os_family if source_image else "debian",
        version=version[:32],
        min_disk_gib=max(1, state.min_disk_gib or snapshot.size_gib),
        license_price_hourly=source_image.license_price_hourly if source_image else 0,
        project=snapshot.project,
        backend_refs={snapshot.zone.code: state.image_ref},
    )
    image.zones.add(snapshot.zone)
    return image


def _created(finished: list[tuple[Operation, SnapshotState]]) -> None:
    with transaction.atomic():
        snapshots = _locked(op.snapshot_id for op, _ in finished)
        now = timezone.now()
        closed = Operation.objects.close_open([op.pk for op, _ in finished], OperationState.SUCCEEDED)
        changed, schedules = [], set()
        for op, state in finished:
            if op.pk not in closed:
                continue
            snapshot = snapshots[op.snapshot_id]
            snapshot.status, snapshot.backend_id = SS.AVAILABLE, state.backend_id
            snapshot.size_gib, snapshot.min_disk_gib = state.size_gib, state.min_disk_gib
            snapshot.image_ref, snapshot.fault_message, snapshot.updated_at = state.image_ref, "", now
            if snapshot.is_bootable and state.image_ref and snapshot.image_id is None:
                snapshot.image = _image_of(snapshot, state)
            changed.append(snapshot)
            if snapshot.schedule_id:
                schedules.add(snapshot.schedule_id)
        Snapshot.objects.bulk_update(changed, FIELDS)
        sync_snapshots(changed, at=now)
        for schedule_id in schedules:
            retire_old_backups(schedule_id)


def retire_old_backups(schedule_id) -> list[Operation]:
    """The schedule's available backups beyond its `keep`, oldest first, set deleting with a
    delete operation each (inside the transaction that recorded a new backup's success). Their
    first step is sent by the reconciler, which picks up operations nobody has claimed."""
    schedule = BackupSchedule.objects.filter(pk=schedule_id).first()
    if schedule is None:
        return []
    kept = Snapshot.objects.select_for_update(of=("self",)).filter(
        schedule_id=schedule_id, kind=SnapshotKind.BACKUP, status=SS.AVAILABLE
    )
    beyond = list(kept.order_by("-created_at", "-pk")[schedule.keep :])
    if not beyond:
        return []
    now = timezone.now()
    for snapshot in beyond:
        snapshot.status, snapshot.updated_at = SS.DELETING, now
    Snapshot.objects.bulk_update(beyond, ["status", "updated_at"])
    Image.objects.filter(snapshot__in=beyond).update(is_active=False)
    return Operation.objects.bulk_create(
        Operation(
            snapshot=snapshot,
            action=Action.SNAPSHOT_DELETE,
            params={"reason": "retention"},
            deadline=operation_deadline(),
            step_token=uuid.uuid4().hex,
        )
        for snapshot in beyond
    )


def _gone(finished: list[tuple[Operation, SnapshotState | None]]) -> None:
    with transaction.atomic():
        snapshots = _locked(op.snapshot_id for op, _ in finished)
        now = timezone.now()
        closed = Operation.objects.close_open([op.pk for op, _ in finished], OperationState.SUCCEEDED)
        changed = []
        for op, _ in finished:
            if op.pk in closed:
                snapshot = snapshots[op.snapshot_id]
                snapshot.status, snapshot.deleted_at, snapshot.updated_at = SS.DELETED, now, now
                changed.append(snapshot)
        Snapshot.objects.bulk_update(changed, FIELDS)
        Image.objects.filter(snapshot__in=changed).update(is_active=False)
        sync_snapshots(changed, at=now)


# --- fail -------------------------------------------------------------------------------------


def _in_cloud(snapshot: Snapshot) -> SnapshotState | BackendError | None:
    try:
        backend = get_backend(snapshot.zone.backend)
        if not snapshot.backend_id:
            return backend.find_snapshot(snapshot.zone.code, str(snapshot.pk))
        return backend.get_snapshot(snapshot.backend_id)
    except NotFound:
        return None
    except BackendError as error:
        return error


def _snapshot_failed(op: Operation, message: str, detail: str) -> None:
    """Close a failed operation. A failed snapshot is an error (deleted from the cloud, best
    effort, so it is not billed); a failed deletion leaves the snapshot as the cloud still has it.
    A failed backup e-mails the project's owners and admins with the reason."""
    seen = _in_cloud(op.snapshot)
    with transaction.atomic():
        snapshot = (
            Snapshot.objects.select_for_update(of=("self",))
            .select_related("project__organization", "zone", "source_instance", "schedule")
            .get(pk=op.snapshot_id)
        )
        if not op.close(OperationState.FAILED, message=message, detail=detail):
            return
        log.warning(
            "operation failed", extra={"operation": str(op.pk), "action": op.action, "detail": detail}
        )
        if (
            op.action == Action.SNAPSHOT_DELETE
            and isinstance(seen, SnapshotState)
            and seen.state == C.AVAILABLE
        ):
            snapshot.status, snapshot.fault_message = SS.AVAILABLE, message[:500]
            Image.objects.filter(snapshot=snapshot).update(is_active=True)
        elif op.action == Action.SNAPSHOT_DELETE and seen is None:
            snapshot.status, snapshot.deleted_at = SS.DELETED, timezone.now()
        else:
            snapshot.status, snapshot.fault_message = SS.ERROR, message[:500]
            if isinstance(seen, SnapshotState):
                snapshot.backend_id = seen.backend_id
        snapshot.updated_at = timezone.now()
        snapshot.save(update_fields=FIELDS)
        sync_snapshots([snapshot])
        if op.action == Action.SNAPSHOT_CREATE and snapshot.kind == SnapshotKind.BACKUP:
            notify.backup_failed(snapshot, message)
    if op.action in (Action.SNAPSHOT_CREATE, Action.SNAPSHOT_COPY) and isinstance(seen, SnapshotState):
        try:
            get_backend(snapshot.zone.backend).delete_snapshot(seen.backend_id)
        except BackendError:
            log.warning(
                "could not delete failed snapshot", extra={"backend_id": seen.backend_id}, exc_info=True
            )


def _snapshot_kind(submit, progress, succeed, **extra) -> Kind:
    return Kind(
        submit=submit,
        look=_look,
        progress=progress,
        succeed=succeed,
        fail=_snapshot_failed,
        gone_message=GONE_MESSAGE,
        **extra,
    )


SNAPSHOT_OPERATIONS: dict[str, Kind] = {
    Action.SNAPSHOT_CREATE: _snapshot_kind(_create, _available, _created, submitted=_record_snapshot_ids),
    Action.SNAPSHOT_DELETE: _snapshot_kind(_delete, _deleted, _gone, gone_is_done=True),
    Action.SNAPSHOT_COPY: _snapshot_kind(_copy, _available, _created, submitted=_record_snapshot_ids),
}
