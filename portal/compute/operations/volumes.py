"""The kinds of operation that change volumes: create, attach, detach, extend, delete.

A volume's status shows the request under way (`creating`, `attaching`…, set by the service) and
changes to what the cloud confirmed only here, in `succeed`, with its billing in the same
transaction: a volume is billed from the cloud's "available" until the cloud no longer finds it.
Creation is idempotent by the volume's UUID in the cloud's metadata (`find_volume`), so a submit
repeated after a worker died between the cloud call and saving its answer adopts the first volume.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from portal.compute.backends import (
    BackendError,
    ComputeBackend,
    NotFound,
    VolumeCloudState,
    VolumeSpec,
    VolumeState,
    get_backend,
)
from portal.compute.models import Action, Instance, Operation, OperationState, Volume, VolumeStatus
from portal.compute.operations.kinds import Answers, Kind, Progress, each
from portal.metering.segments import sync_volumes

log = logging.getLogger(__name__)
V = VolumeCloudState
VS = VolumeStatus
GONE_MESSAGE = "The volume no longer exists in the cloud."


def volume_spec(volume: Volume) -> VolumeSpec:
    return VolumeSpec(
        idempotency_key=str(volume.pk), name=volume.name, zone=volume.zone.code, size_gib=volume.size_gib
    )


def _volume_id(backend: ComputeBackend, op: Operation) -> str:
    """The volume's id in the cloud. A row without one (a worker died after the cloud made it and
    before the id was saved) finds it by the volume's UUID and keeps it."""
    volume = op.volume
    if not volume.backend_id:
        found = backend.find_volume(volume.zone.code, str(volume.pk))
        if found is None:
            raise NotFound("The volume was never created in the cloud.", "no backend id")
        Volume.objects.filter(pk=volume.pk, backend_id="").update(backend_id=found.backend_id)
        volume.backend_id = found.backend_id
    return volume.backend_id


# --- submit -----------------------------------------------------------------------------------


def _create(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    # Adopts a volume already made with this UUID: a retried creation makes no second.
    return each(
        ops,
        lambda op: (
            backend.find_volume(op.volume.zone.code, str(op.volume_id))
            or backend.create_volume(volume_spec(op.volume))
        ),
    )


def _record_volume_ids(accepted: list[tuple[Operation, VolumeState]]) -> None:
    new = []
    for op, state in accepted:
        if not op.volume.backend_id:
            op.volume.backend_id = state.backend_id
            new.append(op.volume)
    Volume.objects.bulk_update(new, ["backend_id"])


def _attach(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    return each(ops, lambda op: backend.attach_volume(_volume_id(backend, op), op.params["server_id"]))


def _detach(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    return each(ops, lambda op: backend.detach_volume(_volume_id(backend, op), op.params["server_id"]))


def _extend(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    return each(ops, lambda op: backend.extend_volume(_volume_id(backend, op), op.params["size_gib"]))


def _delete(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    def call(op: Operation) -> None:
        try:
            backend.delete_volume(_volume_id(backend, op))
        except NotFound:
            return None  # never reached the cloud, or already gone: nothing to delete

    return each(ops, call)


# --- look and progress ------------------------------------------------------------------------


def _look(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    """Each volume's state; one never created (no id) is not found."""
    return each(
        ops,
        lambda op: (
            backend.get_volume(op.volume.backend_id)
            if op.volume.backend_id
            else NotFound("The volume was never created.", "no backend id")
        ),
    )


def _checked(done: Callable[[Operation, VolumeState], bool]):
    def progress(op: Operation, state: VolumeState) -> tuple[Progress, str]:
        if state.state == V.ERROR:
            return Progress.FAILED, state.fault or "The cloud reports an error on the volume"
        return (Progress.DONE if done(op, state) else Progress.WAITING), ""

    return progress


_available = _checked(lambda op, s: s.state == V.AVAILABLE)
_attached = _checked(lambda op, s: s.state == V.IN_USE and s.attached_to == op.params["server_id"])
_detached = _checked(
    lambda op, s: s.state in (V.AVAILABLE, V.IN_USE) and s.attached_to != op.params["server_id"]
)
_extended = _checked(lambda op, s: s.state in (V.AVAILABLE, V.IN_USE) and s.size_gib >= op.params["size_gib"])
_deleted = _checked(lambda op, s: False)  # a deletion ends when the cloud no longer finds it


# --- succeed ----------------------------------------------------------------------------------


def _became_available(op: Operation, volume: Volume, state: VolumeState, now) -> None:
    volume.status, volume.backend_id, volume.fault_message = VS.AVAILABLE, state.backend_id, ""


def _became_attached(op: Operation, volume: Volume, state: VolumeState, now) -> None:
    volume.status, volume.attached_to_id, volume.device = VS.IN_USE, op.params["instance_id"], state.device


def _became_detached(op: Operation, volume: Volume, state: VolumeState, now) -> None:
    volume.status, volume.attached_to_id, volume.device = VS.AVAILABLE, None, ""


def _became_larger(op: Operation, volume: Volume, state: VolumeState, now) -> None:
    volume.size_gib = max(op.params["size_gib"], state.size_gib)
    volume.status = VS.IN_USE if state.state == V.IN_USE else VS.AVAILABLE


def _became_deleted(op: Operation, volume: Volume, state: VolumeState | None, now) -> None:
    volume.status, volume.deleted_at, volume.attached_to_id, volume.device = VS.DELETED, now, None, ""


FIELDS = [
    "status",
    "backend_id",
    "fault_message",
    "attached_to",
    "device",
    "size_gib",
    "deleted_at",
    "updated_at",
]


def _succeeded(apply: Callable) -> Callable[[list[tuple[Operation, VolumeState | None]]], None]:
    def succeed(finished: list[tuple[Operation, VolumeState | None]]) -> None:
        """Close the operations and set what the cloud confirmed, billing with it, in a fixed
        number of statements however many."""
        with transaction.atomic():
            volumes = {
                volume.pk: volume
                for volume in Volume.objects.select_for_update(of=("self",))
                .select_related("project")
                .filter(pk__in=[op.volume_id for op, _ in finished])
                .order_by("pk")
            }
            now = timezone.now()  # after the locks: what committed before us came first
            closed = Operation.objects.close_open([op.pk for op, _ in finished], OperationState.SUCCEEDED)
            changed = []
            for op, state in finished:
                if op.pk in closed:
                    volume = volumes[op.volume_id]
                    apply(op, volume, state, now)
                    volume.updated_at = now
                    changed.append(volume)
            Volume.objects.bulk_update(changed, FIELDS)
            sync_volumes(changed, at=now)

    return succeed


# --- fail -------------------------------------------------------------------------------------


def _in_cloud(op: Operation) -> VolumeState | BackendError | None:
    """What the cloud says of the volume now: its state, None (not found) or the error asking."""
    volume = op.volume
    try:
        backend = get_backend(volume.zone.backend)
        if not volume.backend_id:
            return backend.find_volume(volume.zone.code, str(volume.pk))
        return backend.get_volume(volume.backend_id)
    except NotFound:
        return None
    except BackendError as error:
        return error


def _volume_failed(op: Operation, message: str, detail: str) -> None:
    """Close a failed operation. After a failed attach, detach, extend or delete the volume shows
    what the cloud says it is (a refused attach leaves it available); a failed creation, a volume
    gone from the cloud or one the cloud cannot tell about is an error for a person to look at, and
    a failed creation's volume is deleted (best effort), so it holds no quota and is not billed."""
    seen = _in_cloud(op)
    with transaction.atomic():
        volume = (
            Volume.objects.select_for_update(of=("self",))
            .select_related("project", "zone")
            .get(pk=op.volume_id)
        )
        if not op.close(OperationState.FAILED, message=message, detail=detail):
            return
        log.warning(
            "operation failed", extra={"operation": str(op.pk), "action": op.action, "detail": detail}
        )
        settled = isinstance(seen, VolumeState) and seen.state in (V.AVAILABLE, V.IN_USE)
        if op.action == Action.VOLUME_CREATE or not settled:
            volume.status = VS.ERROR
            gone = seen is None and op.action != Action.VOLUME_CREATE
            volume.fault_message = GONE_MESSAGE if gone else message[:500]
            if seen is None:  # nothing in the cloud: it holds no quota and no server
                volume.backend_id, volume.attached_to_id, volume.device = "", None, ""
            elif isinstance(seen, VolumeState):
                volume.backend_id = seen.backend_id
        else:
            _mirror(volume, seen)
        volume.updated_at = timezone.now()
        volume.save(update_fields=FIELDS)
        sync_volumes([volume])
    if op.action == Action.VOLUME_CREATE and isinstance(seen, VolumeState):
        _delete_failed_volume(volume, seen.backend_id)


def _mirror(volume: Volume, state: VolumeState) -> None:
    """A settled volume as the cloud has it: attached to one of our servers, or not."""
    volume.fault_message, volume.size_gib = "", max(volume.size_gib, state.size_gib)
    server = None
    if state.state == V.IN_USE and state.attached_to:
        server = Instance.objects.filter(zone_id=volume.zone_id, backend_id=state.attached_to).first()
    if server is None:
        volume.status, volume.attached_to_id, volume.device = VS.AVAILABLE, None, ""
    else:
        volume.status, volume.attached_to_id, volume.device = VS.IN_USE, server.pk, state.device


def _delete_failed_volume(volume: Volume, backend_id: str) -> None:
    try:
        get_backend(volume.zone.backend).delete_volume(backend_id)
    except BackendError:
        log.warning("could not delete failed volume", extra={"backend_id": backend_id}, exc_info=True)
        Volume.objects.filter(pk=volume.pk, backend_id="").update(backend_id=backend_id)  # holds quota
        return
    Volume.objects.filter(pk=volume.pk).update(backend_id="")


def _volume_kind(submit, progress, succeed, **extra) -> Kind:
    return Kind(
        submit=submit,
        look=_look,
        progress=progress,
        succeed=_succeeded(succeed),
        fail=_volume_failed,
        gone_message=GONE_MESSAGE,
        **extra,
    )


VOLUME_OPERATIONS: dict[str, Kind] = {
    Action.VOLUME_CREATE: _volume_kind(_create, _available, _became_available, submitted=_record_volume_ids),
    Action.VOLUME_ATTACH: _volume_kind(_attach, _attached, _became_attached),
    Action.VOLUME_DETACH: _volume_kind(_detach, _detached, _became_detached),
    Action.VOLUME_EXTEND: _volume_kind(_extend, _extended, _became_larger),
    Action.VOLUME_DELETE: _volume_kind(_delete, _deleted, _became_deleted, gone_is_done=True),
}
