"""Volumes and snapshots of the simulated cloud (a mixin of `SimulatedBackend`), as database rows.

They behave like a real cloud's: every change takes `SimulatedKnobs.action_seconds` (the state is
settled lazily on read, as for servers), calls fail transiently as often as the knobs say, and what
a cloud refuses is refused here with the same kind of error — attaching to a server in another zone
or past the per-server limit, deleting an attached volume, shrinking one (`Rejected`); an unknown
id is `NotFound`. An operator (or a test) declares a capability absent for a zone with
`Zone.backend_settings = {"absent": ["volume_snapshots"]}`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from portal.compute.backends.base import (
    BackendState,
    Capability,
    NotFound,
    Rejected,
    not_available,
)
from portal.compute.backends.storage import (
    STORAGE_METADATA_KEY,
    SnapshotCloudState,
    SnapshotCopySpec,
    SnapshotSource,
    SnapshotSpec,
    SnapshotState,
    VolumeCloudState,
    VolumeSpec,
    VolumeState,
)

V = VolumeCloudState
S = SnapshotCloudState
# Everything but a graphical console (the simulated cloud has no display to show).
ALL_CAPABILITIES = frozenset(Capability) - {Capability.GRAPHICAL_CONSOLE}
# How many volumes one server takes (virtio disks vdb…vdi), unless the zone's settings say otherwise.
VOLUMES_PER_SERVER = 8
# The states a server can take a volume in (a building or deleting server cannot).
SERVER_ATTACHABLE = {BackendState.RUNNING, BackendState.STOPPED}


def _models():
    from portal.compute.models import SimulatedServer, SimulatedSnapshot, SimulatedVolume

    return SimulatedServer, SimulatedVolume, SimulatedSnapshot


def _land(row, now) -> bool:
    """Finish a transition whose time is up; True if the row changed (the caller saves it)."""
    if not (row.target_state and row.transition_until and row.transition_until <= now):
        return False
    if row.target_state == "gone":
        row.deleted = True
    else:
        row.state = row.target_state
    if row.state == V.AVAILABLE and getattr(row, "attached_to", ""):
        row.attached_to, row.device = "", ""  # a detach that landed
    row.target_state, row.transition_until = "", None
    return True


class SimulatedStorage:
    """Needs the host class's `_call()` (knobs, maybe a transient error) and `zone_settings()`."""

    def capabilities(self, zone: str) -> set[Capability]:
        absent = set(self.zone_settings(zone).get("absent", []))
        return {capability for capability in ALL_CAPABILITIES if capability.value not in absent}

    def _require(self, capability: Capability, zone: str) -> None:
        if capability not in self.capabilities(zone):
            raise not_available(capability, zone)

    # --- volumes -----------------------------------------------------------------------------

    def _volume_row(self, backend_id: str, *, lock: bool = False):
        _, SimulatedVolume, _ = _models()
        rows = SimulatedVolume.objects.select_for_update() if lock else SimulatedVolume.objects
        row = rows.filter(backend_id=backend_id, deleted=False).first()
        if row is not None and _land(row, timezone.now()):
            row.save()
        if row is None or row.deleted:
            raise NotFound(
                "The volume no longer exists in the cloud.", f"simulated volume {backend_id} not found"
            )
        return row

    def _volume_state(self, row) -> VolumeState:
        return VolumeState(
            backend_id=row.backend_id,
            state=VolumeCloudState(row.state),
            size_gib=row.size_gib,
            attached_to=row.attached_to,
            device=row.device if row.state == V.IN_USE else "",
            fault=row.fault,
            idempotency_key=row.idempotency_key,
            name=row.name,
            metadata=row.metadata,
        )

    def _begin_volume(self, row, during: VolumeCloudState, lands: str, seconds: float, **changes) -> None:
        for name, value in changes.items():
            setattr(row, name, value)
        row.state, row.target_state = during, lands
        row.transition_until = timezone.now() + timedelta(seconds=seconds)
        row.save()

    def create_volume(self, spec: VolumeSpec) -> VolumeState:
        knobs = self._call()
        self._require(Capability.VOLUMES, spec.zone)
        found = self.find_volume(spec.zone, spec.idempotency_key)
        if found is not None:
            return found
        _, SimulatedVolume, _ = _models()
        if spec.source_snapshot:
            snapshot = self._snapshot_row(spec.source_snapshot)
            if snapshot.source != SnapshotSource.VOLUME or snapshot.state != S.AVAILABLE:
                raise Rejected("That snapshot cannot become a volume now.", f"snapshot {snapshot.state}")
            if spec.size_gib < snapshot.size_gib:
                raise Rejected(
                    f"A volume made of this snapshot needs at least {snapshot.size_gib} GiB.",
                    "simulated volume smaller than its snapshot",
                )
        row = SimulatedVolume(
            backend_id=f"simvol-{uuid.uuid4().hex[:12]}",
            idempotency_key=spec.idempotency_key,
            zone_code=spec.zone,
            name=spec.name,
            size_gib=spec.size_gib,
            metadata={STORAGE_METADATA_KEY: spec.idempotency_key},
        )
        self._begin_volume(row, V.CREATING, V.AVAILABLE, knobs.action_seconds)
        return self._volume_state(row)

    def get_volume(self, backend_id: str) -> VolumeState:
        self._call()
        return self._volume_state(self._volume_row(backend_id))

    def find_volume(self, zone: str, idempotency_key: str) -> VolumeState | None:
        _, SimulatedVolume, _ = _models()
        for row in SimulatedVolume.objects.filter(idempotency_key=idempotency_key, deleted=False):
            try:
                return self._volume_state(self._volume_row(row.backend_id))
            except NotFound:
                continue
        return None

    def list_volumes(self, zone: str) -> list[VolumeState]:
        self._call()
        _, SimulatedVolume, _ = _models()
        now, states = timezone.now(), []
        for row in SimulatedVolume.objects.filter(zone_code=zone, deleted=False).order_by("pk"):
            if _land(row, now):
                row.save()
            if not row.deleted:
                states.append(self._volume_state(row))
        return states

    def attach_volume(self, backend_id: str, server_id: str) -> None:
        knobs = self._call()
        SimulatedServer, SimulatedVolume, _ = _models()
        with transaction.atomic():
            row = self._volume_row(backend_id, lock=True)
            self._require(Capability.VOLUMES, row.zone_code)
            if row.attached_to == server_id and row.state in (V.ATTACHING, V.IN_USE):
                return  # already there or on the way
            server = (
                SimulatedServer.objects.select_for_update()
                .filter(backend_id=server_id, deleted=False)
                .first()
            )
            if server is None:
                raise Rejected(
                    "The server no longer exists in the cloud.", f"simulated {server_id} not found"
                )
            self._settle(server)
            if server.zone_code != row.zone_code:
                raise Rejected(
                    f"The volume is in {row.zone_code} and the server in {server.zone_code}: a volume "
                    "can only be attached to a server in its own zone.",
                    "simulated cross-zone attach",
                )
            if row.state != V.AVAILABLE:
                raise Rejected(f"The volume is {row.state.replace('_', ' ')} and can't be attached now.")
            if server.state not in SERVER_ATTACHABLE:
                raise Rejected(f"The server is {server.state} and can't take a volume now.")
            taken = set(
                SimulatedVolume.objects.filter(attached_to=server_id, deleted=False).values_list(
                    "device", flat=True
                )
            )
            limit = int(self.zone_settings(row.zone_code).get("volumes_per_server", VOLUMES_PER_SERVER))
            free = [
                f"/dev/vd{chr(ord('b') + n)}"
                for n in range(limit)
                if f"/dev/vd{chr(ord('b') + n)}" not in taken
            ]
            if not free:
                raise Rejected(
                    f"A server in {row.zone_code} takes at most {limit} volumes.", "simulated attach limit"
                )
            self._begin_volume(
                row, V.ATTACHING, V.IN_USE, knobs.action_seconds, attached_to=server_id, device=free[0]
            )

    def detach_volume(self, backend_id: str, server_id: str) -> None:
        knobs = self._call()
        with transaction.atomic():
            row = self._volume_row(backend_id, lock=True)
            if row.attached_to != server_id or row.state == V.DETACHING:
                return  # not attached to that server, or on its way off: nothing to do
            if row.state != V.IN_USE:
                raise Rejected(f"The volume is {row.state} and can't be detached now.")
            self._begin_volume(row, V.DETACHING, V.AVAILABLE, knobs.action_seconds)

    def extend_volume(self, backend_id: str, size_gib: int) -> None:
        knobs = self._call()
        with transaction.atomic():
            row = self._volume_row(backend_id, lock=True)
            self._require(Capability.VOLUME_EXTEND, row.zone_code)
            if row.size_gib == size_gib:
                return  # already that size (or on the way): repeating the call changes nothing
            if size_gib < row.size_gib:
                raise Rejected(f"The volume is {row.size_gib} GiB: volumes only grow.", "simulated shrink")
            if row.state not in (V.AVAILABLE, V.IN_USE):
                raise Rejected(f"The volume is {row.state.replace('_', ' ')} and can't be extended now.")
            self._begin_volume(row, V.EXTENDING, row.state, knobs.action_seconds, size_gib=size_gib)

    def delete_volume(self, backend_id: str) -> None:
        knobs = self._call()
        with transaction.atomic():
            try:
                row = self._volume_row(backend_id, lock=True)
            except NotFound:
                return  # already gone
            if row.state == V.DELETING:
                return
            if row.attached_to or row.state in (V.ATTACHING, V.IN_USE, V.DETACHING):
                raise Rejected(
                    "The volume is attached to a server: detach it first.", "simulated delete attached"
                )
            if row.state == V.EXTENDING:
                raise Rejected("The volume is being extended; try again in a moment.")
            self._begin_volume(row, V.DELETING, "gone", knobs.action_seconds)

    def _detach_from_deleted_server(self, server_id: str) -> None:
        """A deleted server lets go of its volumes, as a cloud's do."""
        _, SimulatedVolume, _ = _models()
        SimulatedVolume.objects.filter(attached_to=server_id, deleted=False).update(
            attached_to="", device="", state=V.AVAILABLE, target_state="", transition_until=None
        )

    # --- snapshots ---------------------------------------------------------------------------

    def _snapshot_row(self, backend_id: str, *, lock: bool = False):
        _, _, SimulatedSnapshot = _models()
        rows = SimulatedSnapshot.objects.select_for_update() if lock else SimulatedSnapshot.objects
        row = rows.filter(backend_id=backend_id, deleted=False).first()
        if row is not None and _land(row, timezone.now()):
            row.save()
        if row is None or row.deleted:
            raise NotFound("The snapshot no longer exists in the cloud.", f"simulated snapshot {backend_id}")
        return row

    def _snapshot_state(self, row) -> SnapshotState:
        return SnapshotState(
            backend_id=row.backend_id,
            state=SnapshotCloudState(row.state),
            size_gib=row.size_gib,
            source=SnapshotSource(row.source),
            image_ref=row.image_ref,
            min_disk_gib=row.min_disk_gib,
            idempotency_key=row.idempotency_key,
            name=row.name,
            metadata=row.metadata,
        )

    def create_snapshot(self, spec: SnapshotSpec) -> SnapshotState:
        knobs = self._call()
        self._require(
            Capability.SERVER_SNAPSHOTS
            if spec.source == SnapshotSource.SERVER
            else Capability.VOLUME_SNAPSHOTS,
            spec.zone,
        )
        found = self.find_snapshot(spec.zone, spec.idempotency_key)
        if found is not None:
            return found
        SimulatedServer, _, SimulatedSnapshot = _models()
        if spec.source == SnapshotSource.SERVER:
            server = SimulatedServer.objects.filter(backend_id=spec.source_id, deleted=False).first()
            if server is None:
                raise Rejected("The server no longer exists in the cloud.", f"simulated {spec.source_id}")
            disk = max(1, server.root_disk_gib)
            size, min_disk, image_ref = disk, disk, f"simimg-{uuid.uuid4().hex[:12]}"
        else:
            volume = self._volume_row(spec.source_id)
            size, min_disk, image_ref = volume.size_gib, 0, ""
        row = SimulatedSnapshot(
            backend_id=f"simsnap-{uuid.uuid4().hex[:12]}",
            idempotency_key=spec.idempotency_key,
            zone_code=spec.zone,
            name=spec.name,
            source=spec.source,
            source_id=spec.source_id,
            size_gib=size,
            min_disk_gib=min_disk,
            image_ref=image_ref,
            state=S.CREATING,
            target_state=S.AVAILABLE,
            transition_until=timezone.now() + timedelta(seconds=knobs.action_seconds),
            metadata={STORAGE_METADATA_KEY: spec.idempotency_key},
        )
        row.save()
        return self._snapshot_state(row)

    def get_snapshot(self, backend_id: str) -> SnapshotState:
        self._call()
        return self._snapshot_state(self._snapshot_row(backend_id))

    def find_snapshot(self, zone: str, idempotency_key: str) -> SnapshotState | None:
        _, _, SimulatedSnapshot = _models()
        for row in SimulatedSnapshot.objects.filter(idempotency_key=idempotency_key, deleted=False):
            try:
                return self._snapshot_state(self._snapshot_row(row.backend_id))
            except NotFound:
                continue
        return None

    def list_snapshots(self, zone: str) -> list[SnapshotState]:
        self._call()
        _, _, SimulatedSnapshot = _models()
        states = []
        for row in SimulatedSnapshot.objects.filter(zone_code=zone, deleted=False).order_by("pk"):
            try:
                states.append(self._snapshot_state(self._snapshot_row(row.backend_id)))
            except NotFound:
                continue
        return states

    def delete_snapshot(self, backend_id: str) -> None:
        knobs = self._call()
        with transaction.atomic():
            try:
                row = self._snapshot_row(backend_id, lock=True)
            except NotFound:
                return
            if row.state == S.DELETING:
                return
            row.state, row.target_state = S.DELETING, "gone"
            row.transition_until = timezone.now() + timedelta(seconds=knobs.action_seconds)
            row.save()

    def copy_snapshot(self, spec: SnapshotCopySpec) -> SnapshotState:
        """A copy of a server snapshot in another zone: a row of its own there, made like a
        snapshot (it lands after `action_seconds`; a name holding the knobs' `fail_marker` lands
        in error, as a copy the cloud could not finish)."""
        knobs = self._call()
        self._require(Capability.IMAGE_COPY, spec.zone)
        found = self.find_snapshot(spec.zone, spec.idempotency_key)
        if found is not None:
            return found
        try:
            source = self._snapshot_row(spec.source_id)
        except NotFound:
            raise Rejected("The image to copy no longer exists.", f"simulated {spec.source_id}") from None
        self._require(Capability.IMAGE_COPY, source.zone_code)
        if source.source != SnapshotSource.SERVER or source.state != S.AVAILABLE:
            raise Rejected(
                "Only an available image can be copied.", f"simulated {source.source} {source.state}"
            )
        if source.zone_code == spec.zone:
            raise Rejected(f"The image is already in {spec.zone}.", "simulated copy into its own zone")
        _, _, SimulatedSnapshot = _models()
        failing = bool(knobs.fail_marker) and knobs.fail_marker in spec.name
        row = SimulatedSnapshot(
            backend_id=f"simsnap-{uuid.uuid4().hex[:12]}",
            idempotency_key=spec.idempotency_key,
            zone_code=spec.zone,
            name=spec.name,
            source=SnapshotSource.SERVER,
            source_id=spec.source_id,
            size_gib=source.size_gib,
            min_disk_gib=source.min_disk_gib,
            image_ref=f"simimg-{uuid.uuid4().hex[:12]}",
            state=S.CREATING,
            target_state=S.ERROR if failing else S.AVAILABLE,
            transition_until=timezone.now() + timedelta(seconds=knobs.action_seconds),
            metadata={STORAGE_METADATA_KEY: spec.idempotency_key, "copied-from": spec.source_id},
        )
        row.save()
        return self._snapshot_state(row)

    def _image_for(self, image_ref: str, zone: str):
        """The server snapshot a new server boots from: Rejected when it is gone or elsewhere."""
        _, _, SimulatedSnapshot = _models()
        row = SimulatedSnapshot.objects.filter(image_ref=image_ref, deleted=False).first()
        if row is not None and _land(row, timezone.now()):
            row.save()
        if row is None or row.deleted or row.state != S.AVAILABLE:
            raise Rejected("That snapshot is not available to boot from.", f"simulated image {image_ref}")
        if row.zone_code != zone:
            raise Rejected(
                f"That snapshot is in {row.zone_code}; launch in that zone.", "image in other zone"
            )
        return row
