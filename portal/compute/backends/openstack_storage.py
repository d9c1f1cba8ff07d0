"""Storage on OpenStack: Cinder volumes and snapshots, Nova's volume attachments, and server
snapshots (Nova's `createImage`, which leaves a Glance image new servers boot from).

Mixed into `OpenStackBackend` (openstack.py), whose connection, zone settings and error translation
(`_connection`, `_zone`, `_cloud`, `_fetch`, `capabilities`) it uses. Backend ids carry the zone like
servers' do: a volume is `"<zone>:<cinder volume id>"`, a snapshot `"<zone>:volume-snapshot:<cinder
snapshot id>"` or `"<zone>:image:<glance image id>"`. Every volume and snapshot carries the portal's
UUID (`STORAGE_METADATA_KEY`) and its zone in the cloud's own metadata — Cinder's metadata, or the
image properties Nova copies from `createImage`'s metadata — so a create repeated after a lost answer
adopts what the first made. Every call submits and returns; the portal polls `get_volume` /
`get_snapshot`. A request the cloud refuses for the thing's state is looked at again and refused in
the customer's words, or taken as done when it is already so (detach of a detached volume).
A volume deleted while it has snapshots (which Cinder refuses) is hidden and deleted later; see
DELETED_METADATA_KEY.
"""

from __future__ import annotations

import json
from contextlib import suppress

from openstack import exceptions as sdk_exceptions
from openstack.compute.v2.server import Server as NovaServer

from portal.compute.backends.base import BackendState, Capability, NotFound, Rejected, not_available
from portal.compute.backends.openstack_mapping import (
    IS_DOING,
    NOT_CONNECTED,
    SNAPSHOT_FAULT,
    SNAPSHOT_GONE,
    VOLUME_BUSY,
    VOLUME_GONE,
    error_text,
    gib_up,
    is_gone,
    server_state,
    snapshot_state,
    storage_fault,
    volume_fault,
    volume_state,
)
from portal.compute.backends.storage import (
    STORAGE_METADATA_KEY,
    SnapshotCloudState,
    SnapshotSource,
    SnapshotSpec,
    SnapshotState,
    VolumeCloudState,
    VolumeSpec,
    VolumeState,
)

B = BackendState
V = VolumeCloudState
JSON = {"Accept": "application/json"}  # Glance words its errors in JSON only when asked to
ZONE_METADATA_KEY = "portal-zone"
# Cinder keeps a volume while it has snapshots; the portal lets the snapshots outlive it. A volume
# deleted in the portal while it has snapshots is marked so, hidden from then on, and deleted in
# Cinder once its last snapshot is gone (`_sweep`).
DELETED_METADATA_KEY = "portal-deleted"
IMAGE, VOLUME_SNAPSHOT = "image", "volume-snapshot"
REFUSED = (sdk_exceptions.BadRequestException, sdk_exceptions.ConflictException)


def _busy(what: str, doing: str, consequence: str) -> Rejected:
    return Rejected(f"The {what} is {doing} right now, so {consequence}. Try again once it has settled.")


class OpenStackStorage:
    # --- ids and lookups ---------------------------------------------------------------------

    def _storage_target(self, backend_id: str, what: str) -> tuple[str, str]:
        zone, _, thing_id = backend_id.partition(":")
        if not zone or not thing_id:
            raise NotFound(VOLUME_GONE if what == "volume" else SNAPSHOT_GONE, f"malformed id {backend_id!r}")
        return zone, thing_id

    def _snapshot_target(self, backend_id: str) -> tuple[str, str, str]:
        zone, rest = self._storage_target(backend_id, "snapshot")
        kind, _, snapshot_id = rest.partition(":")
        if kind not in (IMAGE, VOLUME_SNAPSHOT) or not snapshot_id:
            raise NotFound(SNAPSHOT_GONE, f"malformed snapshot id {backend_id!r}")
        return zone, kind, snapshot_id

    def _require(self, zone: str, capability: Capability) -> None:
        if capability not in self.capabilities(zone):
            raise not_available(capability, zone)

    def _metadata(self, key: str, zone: str) -> dict:
        return {STORAGE_METADATA_KEY: key, ZONE_METADATA_KEY: zone}

    def _cinder_volume(self, conn, volume_id: str):
        volume = conn.block_storage.get_volume(volume_id)
        if not volume.status:
            raise Rejected(NOT_CONNECTED, f"GET volume {volume_id}: the answer is not Cinder's (no status)")
        return volume

    def _our_volumes(self, conn, metadata: dict, *, deleted: bool = False) -> list:
        """Volumes whose metadata has all of `metadata`, oldest first (Cinder's filter is a hint);
        those deleted in the portal but kept for their snapshots only when `deleted`."""
        found = conn.block_storage.volumes(details=True, properties=json.dumps(metadata))
        ours = [
            v
            for v in found
            if metadata.items() <= (v.metadata or {}).items()
            and (deleted or DELETED_METADATA_KEY not in (v.metadata or {}))
        ]
        return sorted(ours, key=lambda v: (v.created_at or "", v.id))

    def _sweep(self, conn) -> None:
        """Delete the volumes kept for their snapshots whose last snapshot is gone."""
        for volume in self._our_volumes(conn, {DELETED_METADATA_KEY: "1"}, deleted=True):
            if not any(True for _ in conn.block_storage.snapshots(details=False, volume_id=volume.id)):
                with suppress(sdk_exceptions.NotFoundException, *REFUSED):
                    conn.block_storage.delete_volume(volume.id, ignore_missing=True)

    def _our_cinder_snapshots(self, conn, metadata: dict) -> list:
        ours = [
            s
            for s in conn.block_storage.snapshots(details=True)
            if metadata.items() <= (s.metadata or {}).items()
        ]
        return sorted(ours, key=lambda s: (s.created_at or "", s.id))

    def _glance(self, conn, path: str, params: dict | None = None) -> dict:
        response = conn.image.get(path, params=params, headers=JSON)
        sdk_exceptions.raise_from_response(response)
        return response.json()

    def _our_images(self, conn, metadata: dict) -> list[dict]:
        """Images whose properties have all of `metadata`, oldest first. Glance filters on any
        property; the filter is a hint here too (checked on what comes back)."""
        images, page = [], self._glance(conn, "/images", params=metadata)
        while True:
            images += [i for i in page.get("images", []) if all(i.get(k) == v for k, v in metadata.items())]
            following = page.get("next")
            if not following:
                break
            page = self._glance(conn, following.removeprefix("/v2"))
        return sorted(images, key=lambda i: (i.get("created_at") or "", i["id"]))

    # --- states ------------------------------------------------------------------------------

    def _volume_state(self, zone: str, volume) -> VolumeState:
        attachments = [a for a in volume.attachments or [] if a.get("server_id")]
        attached = attachments[0] if attachments else {}
        metadata = dict(volume.metadata or {})
        return VolumeState(
            backend_id=f"{zone}:{volume.id}",
            state=volume_state(volume.status, bool(attachments)),
            size_gib=int(volume.size or 0),
            attached_to=f"{zone}:{attached['server_id']}" if attached else "",
            device=attached.get("device") or "",
            fault=volume_fault(volume.status),
            idempotency_key=metadata.get(STORAGE_METADATA_KEY, ""),
            name=volume.name or "",
            metadata=metadata,
        )

    def _cinder_snapshot_state(self, zone: str, snapshot) -> SnapshotState:
        metadata = dict(snapshot.metadata or {})
        state = snapshot_state(snapshot.status or "", image=False)
        return SnapshotState(
            backend_id=f"{zone}:{VOLUME_SNAPSHOT}:{snapshot.id}",
            state=state,
            size_gib=int(snapshot.size or 0),
            source=SnapshotSource.VOLUME,
            min_disk_gib=int(snapshot.size or 0),
            fault=SNAPSHOT_FAULT if state == SnapshotCloudState.ERROR else "",
            idempotency_key=metadata.get(STORAGE_METADATA_KEY, ""),
            name=snapshot.name or "",
            metadata=metadata,
        )

    def _image_state(self, zone: str, image: dict) -> SnapshotState:
        state = snapshot_state(image.get("status") or "", image=True)
        min_disk = int(image.get("min_disk") or 0)
        # A snapshot of a server booted from a volume is an image of size 0 whose data are Cinder
        # snapshots: what it occupies is then taken as its minimum disk.
        size = gib_up(image.get("size")) or (min_disk if state == SnapshotCloudState.AVAILABLE else 0)
        metadata = {k: v for k, v in image.items() if k in (STORAGE_METADATA_KEY, ZONE_METADATA_KEY)}
        return SnapshotState(
            backend_id=f"{zone}:{IMAGE}:{image['id']}",
            state=state,
            size_gib=size,
            source=SnapshotSource.SERVER,
            image_ref=image["id"],
            min_disk_gib=min_disk,
            fault=SNAPSHOT_FAULT if state == SnapshotCloudState.ERROR else "",
            idempotency_key=image.get(STORAGE_METADATA_KEY, ""),
            name=image.get("name") or "",
            metadata=metadata,
        )

    # --- volumes -----------------------------------------------------------------------------

    def create_volume(self, spec: VolumeSpec) -> VolumeState:
        settings = self._zone(spec.zone)
        conn = self._connection(spec.zone)
        key = {STORAGE_METADATA_KEY: spec.idempotency_key}
        with self._cloud("create volume", conn, fault=storage_fault):
            self._require(spec.zone, Capability.VOLUMES)
            ours = self._our_volumes(conn, key)
            if ours:
                return self._volume_state(spec.zone, ours[0])
            attrs = {
                "name": spec.name,
                "size": spec.size_gib,
                "description": "Made by the portal; managed there.",
                "metadata": self._metadata(spec.idempotency_key, spec.zone),
            }
            zone_name = settings.get("volume_availability_zone") or settings.get("availability_zone")
            if zone_name:
                attrs["availability_zone"] = zone_name
            if settings.get("volume_type"):
                attrs["volume_type"] = settings["volume_type"]
            if spec.source_snapshot:
                self._require(spec.zone, Capability.VOLUME_SNAPSHOTS)
                source_zone, kind, snapshot_id = self._snapshot_target(spec.source_snapshot)
                if kind != VOLUME_SNAPSHOT or source_zone != spec.zone:
                    raise Rejected(
                        "A volume can be made only from a snapshot of a volume in the same zone.",
                        f"create volume in {spec.zone} from {spec.source_snapshot}",
                    )
                attrs["snapshot_id"] = snapshot_id
            created = conn.block_storage.create_volume(**attrs)
            ours = self._our_volumes(conn, key)
            # Two racing creations (a step re-run after a lost answer): keep the oldest, delete ours.
            if ours and ours[0].id != created.id:
                with suppress(*REFUSED):  # still creating: Cinder refuses; the orphan check finds it
                    conn.block_storage.delete_volume(created.id, ignore_missing=True)
                return self._volume_state(spec.zone, ours[0])
            return self._volume_state(spec.zone, created)

    def get_volume(self, backend_id: str) -> VolumeState:
        zone, volume_id = self._storage_target(backend_id, "volume")
        conn = self._connection(zone)
        with self._cloud("get volume", conn, gone=("volumes", volume_id, VOLUME_GONE)):
            volume = self._cinder_volume(conn, volume_id)
            if DELETED_METADATA_KEY in (volume.metadata or {}):
                raise NotFound(VOLUME_GONE, f"volume {volume_id} was deleted (kept for its snapshots)")
            return self._volume_state(zone, volume)

    def find_volume(self, zone: str, idempotency_key: str) -> VolumeState | None:
        conn = self._connection(zone)
        with self._cloud("find volume", conn):
            if Capability.VOLUMES not in self.capabilities(zone):
                return None
            ours = self._our_volumes(conn, {STORAGE_METADATA_KEY: idempotency_key})
            return self._volume_state(zone, ours[0]) if ours else None

    def list_volumes(self, zone: str) -> list[VolumeState]:
        conn = self._connection(zone)
        with self._cloud("list volumes", conn):
            if Capability.VOLUMES not in self.capabilities(zone):
                return []
            self._sweep(conn)  # the reconciler lists every zone: what waited is deleted at the latest then
            volumes = self._our_volumes(conn, {ZONE_METADATA_KEY: zone})
            return [
                self._volume_state(zone, v) for v in volumes if STORAGE_METADATA_KEY in (v.metadata or {})
            ]

    def attach_volume(self, backend_id: str, server_id: str) -> None:
        zone, volume_id = self._storage_target(backend_id, "volume")
        server_zone, nova_id = self._target(server_id)
        if server_zone != zone:
            raise Rejected(
                "A volume attaches only to servers in its own zone.", f"{backend_id} → {server_id}"
            )
        conn = self._connection(zone)
        gone = ("volumes", volume_id, VOLUME_GONE)
        with self._cloud("attach volume", conn, gone=gone, fault=storage_fault):
            try:
                conn.compute.create_volume_attachment(nova_id, volume=volume_id)
                return
            except sdk_exceptions.NotFoundException:
                self._cinder_volume(conn, volume_id)  # raises NotFound when the volume is gone
                self._fetch(conn, nova_id)  # … or the server
                raise
            except REFUSED as refusal:
                if any(a.volume_id == volume_id for a in conn.compute.volume_attachments(nova_id)):
                    return  # asked before: attached or on its way
                self._refused(conn, zone, volume_id, nova_id, refusal, "attached")

    def _refused(self, conn, zone: str, volume_id: str, nova_id: str, refusal, verb: str) -> None:
        """Why Nova refused to attach or detach (`verb`), in the customer's words."""
        volume = self._volume_state(zone, self._cinder_volume(conn, volume_id))
        if verb == "attached" and volume.attached_to:
            raise Rejected(
                "The volume is attached to another server: detach it from there first.",
                f"attach {volume_id} to {nova_id}: attached to {volume.attached_to}",
            )
        if volume.state not in (V.AVAILABLE, V.IN_USE):
            raise _busy("volume", VOLUME_BUSY[volume.state], f"it can't be {verb}")
        if isinstance(refusal, sdk_exceptions.ConflictException):
            server = self._fetch(conn, nova_id)
            state = server_state(server.status or "", server.task_state)
            doing = "busy" if state in (B.RUNNING, B.STOPPED) else IS_DOING[state]
            raise _busy("server", doing, f"the volume can't be {verb}")
        raise Rejected(storage_fault(error_text(refusal)), f"{verb} {volume_id}: {error_text(refusal)}")

    def detach_volume(self, backend_id: str, server_id: str) -> None:
        zone, volume_id = self._storage_target(backend_id, "volume")
        _, nova_id = self._target(server_id)
        conn = self._connection(zone)
        with self._cloud("detach volume", conn, fault=storage_fault):
            try:
                conn.compute.delete_volume_attachment(
                    NovaServer.new(id=nova_id), volume_id, ignore_missing=False
                )
                return
            except (sdk_exceptions.NotFoundException, *REFUSED) as refusal:
                try:
                    volume = self._cinder_volume(conn, volume_id)
                except sdk_exceptions.NotFoundException as error:
                    if is_gone(error, "volumes", volume_id):
                        return  # a volume that is gone is attached to nothing
                    raise
                attached_here = any(a.get("server_id") == nova_id for a in volume.attachments or [])
                if volume.status == "detaching" or not attached_here:
                    return  # on its way, or not attached to that server: nothing to do
                if isinstance(refusal, sdk_exceptions.NotFoundException):
                    raise  # attached, yet Nova's route answered 404: not the attachment that is missing
                self._refused(conn, zone, volume_id, nova_id, refusal, "detached")

    def extend_volume(self, backend_id: str, size_gib: int) -> None:
        zone, volume_id = self._storage_target(backend_id, "volume")
        conn = self._connection(zone)
        with self._cloud(
            "extend volume", conn, gone=("volumes", volume_id, VOLUME_GONE), fault=storage_fault
        ):
            self._require(zone, Capability.VOLUME_EXTEND)
            volume = self._cinder_volume(conn, volume_id)
            if volume.size == size_gib or volume.status == "extending":
                return  # done before, or under way: repeating changes nothing
            if size_gib < (volume.size or 0):
                raise Rejected(
                    f"A volume can only grow: this one is {volume.size} GiB already.",
                    f"extend {backend_id} to {size_gib} GiB",
                )
            try:
                conn.block_storage.extend_volume(volume_id, size_gib)
            except REFUSED as refusal:
                state = self._volume_state(zone, self._cinder_volume(conn, volume_id))
                if state.state not in (V.AVAILABLE, V.IN_USE):
                    raise _busy("volume", VOLUME_BUSY[state.state], "it can't be made larger") from None
                if state.state == V.IN_USE and "status must be" in error_text(refusal):
                    raise Rejected(
                        "This zone's cloud can make a volume larger only while it is detached: detach it first.",
                        f"extend {backend_id}: {error_text(refusal)}",
                    ) from None
                raise

    def delete_volume(self, backend_id: str) -> None:
        zone, volume_id = self._storage_target(backend_id, "volume")
        conn = self._connection(zone)
        with self._cloud("delete volume", conn, fault=storage_fault):
            try:
                conn.block_storage.delete_volume(volume_id, ignore_missing=False)
            except sdk_exceptions.NotFoundException as error:
                if not is_gone(error, "volumes", volume_id):
                    raise  # a missing route or a wrong endpoint has deleted nothing
            except REFUSED:
                try:
                    state = self._volume_state(zone, self._cinder_volume(conn, volume_id))
                except sdk_exceptions.NotFoundException as error:
                    if is_gone(error, "volumes", volume_id):
                        return
                    raise
                if state.state == V.DELETING:
                    return  # asked before
                if state.attached_to or state.state == V.IN_USE:
                    raise Rejected(
                        "The volume is attached to a server: detach it before deleting it.",
                        f"delete {backend_id}: attached to {state.attached_to}",
                    ) from None
                if state.state in (V.AVAILABLE, V.ERROR) and any(
                    True for _ in conn.block_storage.snapshots(details=False, volume_id=volume_id)
                ):
                    # Its snapshots outlive it in the portal: hide it until they are gone.
                    conn.block_storage.set_volume_metadata(volume_id, **{DELETED_METADATA_KEY: "1"})
                    return
                raise _busy("volume", VOLUME_BUSY[state.state], "it can't be deleted") from None

    # --- snapshots ---------------------------------------------------------------------------

    def create_snapshot(self, spec: SnapshotSpec) -> SnapshotState:
        capability = (
            Capability.SERVER_SNAPSHOTS
            if spec.source == SnapshotSource.SERVER
            else Capability.VOLUME_SNAPSHOTS
        )
        conn = self._connection(spec.zone)
        with self._cloud("create snapshot", conn, fault=storage_fault):
            self._require(spec.zone, capability)
            found = self._find_snapshot(conn, spec.zone, spec.idempotency_key)
            if found is not None:
                return found
            source_zone, _, source_id = spec.source_id.partition(":")
            if source_zone != spec.zone or not source_id:
                raise Rejected(
                    "A snapshot is taken of a server or volume in the same zone.",
                    f"{spec.source_id} in {spec.zone}",
                )
            metadata = self._metadata(spec.idempotency_key, spec.zone)
            if spec.source == SnapshotSource.SERVER:
                return self._server_snapshot(conn, spec, source_id, metadata)
            with self._cloud("create snapshot", conn, gone=("volumes", source_id, VOLUME_GONE)):
                try:
                    # `force`: an attached volume is snapshotted as it is (crash-consistent).
                    created = conn.block_storage.create_snapshot(
                        volume_id=source_id, name=spec.name, metadata=metadata, force=True
                    )
                except REFUSED:
                    state = self._volume_state(spec.zone, self._cinder_volume(conn, source_id))
                    if state.state not in (V.AVAILABLE, V.IN_USE):
                        raise _busy("volume", VOLUME_BUSY[state.state], "it can't be snapshotted") from None
                    raise
            ours = self._our_cinder_snapshots(conn, {STORAGE_METADATA_KEY: spec.idempotency_key})
            if ours and ours[0].id != created.id:  # a racing creation: keep the oldest
                with suppress(*REFUSED):
                    conn.block_storage.delete_snapshot(created.id, ignore_missing=True)
                return self._cinder_snapshot_state(spec.zone, ours[0])
            return self._cinder_snapshot_state(spec.zone, created)

    def _server_snapshot(self, conn, spec: SnapshotSpec, nova_id: str, metadata: dict) -> SnapshotState:
        with self._cloud("snapshot server", conn, nova_id, fault=storage_fault):
            try:
                image_id = NovaServer.new(id=nova_id).create_image(conn.compute, spec.name, metadata)
            except sdk_exceptions.ConflictException:
                # Nova snapshots a server once at a time: a racing request of ours may be that one.
                found = self._find_snapshot(conn, spec.zone, spec.idempotency_key)
                if found is not None:
                    return found
                server = self._fetch(conn, nova_id)
                state = server_state(server.status or "", server.task_state)
                if (server.task_state or "").startswith("image_"):
                    doing = "already being snapshotted"
                else:
                    doing = "busy" if state in (B.RUNNING, B.STOPPED) else IS_DOING[state]
                raise _busy("server", doing, "it can't be snapshotted") from None
        return self._image_state(spec.zone, self._glance(conn, f"/images/{image_id}"))

    def _find_snapshot(self, conn, zone: str, key: str) -> SnapshotState | None:
        capabilities = self.capabilities(zone)
        found: list[SnapshotState] = []
        wanted = {STORAGE_METADATA_KEY: key}
        if Capability.VOLUME_SNAPSHOTS in capabilities:
            found += [self._cinder_snapshot_state(zone, s) for s in self._our_cinder_snapshots(conn, wanted)]
        if Capability.SERVER_SNAPSHOTS in capabilities:
            found += [self._image_state(zone, i) for i in self._our_images(conn, wanted)]
        return found[0] if found else None

    def get_snapshot(self, backend_id: str) -> SnapshotState:
        zone, kind, snapshot_id = self._snapshot_target(backend_id)
        conn = self._connection(zone)
        collection = "images" if kind == IMAGE else "snapshots"
        with self._cloud("get snapshot", conn, gone=(collection, snapshot_id, SNAPSHOT_GONE)):
            if kind == IMAGE:
                image = self._glance(conn, f"/images/{snapshot_id}")
                if image.get("status") == "deleted":
                    raise NotFound(SNAPSHOT_GONE, f"image {snapshot_id} is deleted")
                return self._image_state(zone, image)
            try:
                snapshot = conn.block_storage.get_snapshot(snapshot_id)
            except sdk_exceptions.NotFoundException as error:
                if is_gone(error, "snapshots", snapshot_id):
                    self._sweep(conn)  # its volume may have waited for it
                raise
            if snapshot.status == "deleted":
                raise NotFound(SNAPSHOT_GONE, f"snapshot {snapshot_id} is deleted")
            return self._cinder_snapshot_state(zone, snapshot)

    def find_snapshot(self, zone: str, idempotency_key: str) -> SnapshotState | None:
        conn = self._connection(zone)
        with self._cloud("find snapshot", conn):
            return self._find_snapshot(conn, zone, idempotency_key)

    def list_snapshots(self, zone: str) -> list[SnapshotState]:
        conn = self._connection(zone)
        capabilities = self.capabilities(zone)
        wanted = {ZONE_METADATA_KEY: zone}
        states: list[SnapshotState] = []
        with self._cloud("list snapshots", conn):
            if Capability.VOLUME_SNAPSHOTS in capabilities:
                states += [
                    self._cinder_snapshot_state(zone, s) for s in self._our_cinder_snapshots(conn, wanted)
                ]
            if Capability.SERVER_SNAPSHOTS in capabilities:
                states += [self._image_state(zone, i) for i in self._our_images(conn, wanted)]
        return [s for s in states if s.idempotency_key]

    def delete_snapshot(self, backend_id: str) -> None:
        zone, kind, snapshot_id = self._snapshot_target(backend_id)
        conn = self._connection(zone)
        collection = "images" if kind == IMAGE else "snapshots"
        with self._cloud("delete snapshot", conn, fault=storage_fault):
            try:
                if kind == IMAGE:
                    sdk_exceptions.raise_from_response(
                        conn.image.delete(f"/images/{snapshot_id}", headers=JSON)
                    )
                else:
                    conn.block_storage.delete_snapshot(snapshot_id, ignore_missing=False)
            except sdk_exceptions.NotFoundException as error:
                if not is_gone(error, collection, snapshot_id):
                    raise
            except sdk_exceptions.ForbiddenException as refusal:
                raise Rejected(
                    "This snapshot is protected in the cloud and cannot be deleted. Please contact support.",
                    f"delete {backend_id}: {error_text(refusal)}",
                ) from None
            except REFUSED:
                state = self.get_snapshot(backend_id)
                if state.state == SnapshotCloudState.DELETING:
                    return
                doing = "still being made" if state.state == SnapshotCloudState.CREATING else "busy"
                raise _busy("snapshot", doing, "it can't be deleted") from None
