"""Volumes and snapshots of the libvirt backend (docs/backends/libvirt.md, "Storage").

Zones whose disks are files (`disk_dir`, or the embedded driver's root) get storage; zones on
storage pools declare none of it (yet). Everything is a directory named by a UUID derived from the
portal's idempotency key, holding the disk and a `meta.json` with the portal's facts:

    <disk_dir>/volumes/<uuid>/volume.qcow2, meta.json
    <snapshot_store>/<uuid>/disk.qcow2, meta.json      (default <image_store>/snapshots)

`meta.json` is written first and exclusively (link(2): one attempt wins), so a retried create
finds the record the first try made and carries on with it instead of making a second. Which
server a volume is attached to is never recorded here: libvirt's domain definitions say it
(`disk_users` on every host of the zone).

A copy (every snapshot, and a volume made from a snapshot) never waits in a call: a disk no running
guest uses is copied by `qemu-img convert` in a background process; a running guest's disk by
QEMU's block mirror (`blockCopy`), which `get_snapshot` ends once the copy is in step, leaving a
crash-consistent copy of the disk at that instant. `job.json` says which and where.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import time
import uuid
from pathlib import Path

from portal.compute.backends.base import (
    BackendError,
    Capability,
    NotFound,
    Rejected,
    Transient,
    not_available,
)
from portal.compute.backends.libvirt_connection import host_key
from portal.compute.backends.libvirt_files import (
    GIB,
    CopyJobs,
    Record,
    allocated_gib,
    claim,
    gib_of,
    read_json,
    virtual_size,
)
from portal.compute.backends.libvirt_host import embedded_root
from portal.compute.backends.libvirt_xml import create_overlay, run_tool
from portal.compute.backends.storage import (
    SnapshotCloudState,
    SnapshotCopySpec,
    SnapshotSource,
    SnapshotSpec,
    SnapshotState,
    VolumeCloudState,
    VolumeSpec,
    VolumeState,
)

STORAGE_NAMESPACE = uuid.UUID("5f0c9f0e-8d0c-4a58-9d9e-3c1f4b2a7e61")
STORAGE_CAPABILITIES = {
    Capability.VOLUMES,
    Capability.VOLUME_EXTEND,
    Capability.SERVER_SNAPSHOTS,
    Capability.VOLUME_SNAPSHOTS,
    Capability.IMAGE_COPY,
    Capability.SERVER_REBUILD,
}
# PCI Express hot unplug: the guest waits 5 s for a second press of the slot's button (which cancels).
REPRESS_SECONDS = 8


def storage_uuid_for(idempotency_key: str) -> str:
    try:
        return str(uuid.UUID(idempotency_key))
    except ValueError:
        return str(uuid.uuid5(STORAGE_NAMESPACE, idempotency_key))


class LibvirtStorage(CopyJobs):
    """Volumes and snapshots for `LibvirtBackend` (which this is mixed into: it uses its `_config`,
    `_host`, `_locate`, `_disk_dir`, `_surveys` and `_run_as`)."""

    # --- where things are ------------------------------------------------------------------------

    def _storage_capabilities(self, zone: str) -> set[Capability]:
        try:
            config = self._config(zone)
        except Transient:
            return set()  # no hosts: nothing at all
        return STORAGE_CAPABILITIES if self._file_storage(config) else set()

    def _file_storage(self, config: dict) -> bool:
        return not config.get("storage_pool") and bool(
            config.get("disk_dir") or embedded_root(config["hosts"][0])
        )

    def _storage_config(self, zone: str, capability: Capability) -> dict:
        config = self._config(zone)
        if not self._file_storage(config):
            raise not_available(capability, zone)
        return config

    def _volume_record(self, config: dict, volume_uuid: str) -> Record:
        return Record(self._disk_dir(config, config["hosts"][0]) / "volumes" / volume_uuid, "volume.qcow2")

    def _snapshot_record(self, config: dict, snapshot_uuid: str) -> Record:
        store = config.get("snapshot_store") or os.path.join(config.get("image_store") or "", "snapshots")
        if not os.path.isabs(store):
            raise Rejected(
                "Snapshots can't be made in this zone right now.",
                "libvirt zone needs snapshot_store (or an absolute image_store) for snapshots",
            )
        return Record(Path(store) / snapshot_uuid, "disk.qcow2")

    def _parse_storage_id(self, backend_id: str, kind: str) -> tuple[str, str]:
        zone, _, rest = backend_id.partition("/")
        found_kind, _, object_uuid = rest.partition("/")
        try:
            if found_kind != kind:
                raise ValueError
            object_uuid = str(uuid.UUID(object_uuid))
        except ValueError:
            raise NotFound(f"The {kind} no longer exists in the cloud.", f"not a libvirt {kind} id") from None
        return zone, object_uuid

    def _disk_users(self, config: dict, paths: list[str]) -> dict[str, tuple[str, dict]]:
        """{path: (host URI, use)} for the paths some domain on the zone's hosts uses. Every host
        must answer: a volume on a host that does not is not free."""
        users = {}
        for uri in config["hosts"]:
            for path, use in self._host(config, uri, "disk_users", paths=paths).items():
                users[path] = (uri, use)
        return users

    def create_volume(self, spec: VolumeSpec) -> VolumeState:
        config = self._storage_config(spec.zone, Capability.VOLUMES)
        if spec.size_gib < 1:
            raise Rejected("A volume is at least 1 GiB.", f"asked {spec.size_gib} GiB")
        existing = self.find_volume(spec.zone, spec.idempotency_key)
        if existing is not None and existing.state != VolumeCloudState.CREATING:
            return existing
        source = None
        if spec.source_snapshot:
            source = self._source_snapshot(config, spec)
        volume_uuid = storage_uuid_for(spec.idempotency_key)
        record = self._volume_record(config, volume_uuid)
        self._prepare(config, record)
        claim(
            record.directory / "meta.json",
            {
                "idempotency-key": spec.idempotency_key,
                "name": spec.name,
                "zone": spec.zone,
                "size-gib": spec.size_gib,
            },
        )
        if not (record.final.exists() or record.job or record.failed.exists()):
            if source is not None:
                self._start_convert(config, record, source, spec.size_gib * GIB)
            else:
                run_tool(
                    ["qemu-img", "create", "-q", "-f", "qcow2", str(record.partial), str(spec.size_gib * GIB)]
                )
                owner = self._owner(config)
                if owner:
                    os.chown(record.partial, owner.pw_uid, owner.pw_gid)
                os.replace(record.partial, record.final)
        return self.get_volume(f"{spec.zone}/volume/{volume_uuid}")

    def _source_snapshot(self, config: dict, spec: VolumeSpec) -> Path:
        try:
            snapshot = self.get_snapshot(spec.source_snapshot)
        except NotFound:
            raise Rejected("The snapshot to copy no longer exists.", spec.source_snapshot) from None
        if snapshot.source != SnapshotSource.VOLUME or snapshot.state != SnapshotCloudState.AVAILABLE:
            raise Rejected(
                "Only a completed snapshot of a volume can become a volume.",
                f"{spec.source_snapshot} is a {snapshot.source} snapshot, {snapshot.state}",
            )
        if spec.size_gib < snapshot.min_disk_gib:
            raise Rejected(
                f"A volume made of this snapshot is at least {snapshot.min_disk_gib} GiB.",
                f"asked {spec.size_gib} GiB",
            )
        return self._snapshot_record(
            config, self._parse_storage_id(spec.source_snapshot, "snapshot")[1]
        ).final

    def _volume_state(self, config: dict, zone: str, record: Record, meta: dict, users: dict) -> VolumeState:
        volume_uuid = record.directory.name
        copy, fault = self._copy_state(config, record)
        state, size_gib, attached_to, device = VolumeCloudState.CREATING, int(meta["size-gib"]), "", ""
        if copy == "error":
            state = VolumeCloudState.ERROR
        elif copy == "available":
            size_gib = gib_of(virtual_size(record.final))
            state = VolumeCloudState.AVAILABLE
            user = users.get(str(record.final))
            if user is not None:
                uri, use = user
                attached_to = f"{zone}/{host_key(uri)}/{use['domain']}"
                device = f"/dev/{use['dev']}" if use["dev"] else ""
                if not use["active"] or (use["live"] and use["config"]):
                    state = VolumeCloudState.IN_USE
                elif use["live"]:
                    state = VolumeCloudState.DETACHING
                    self._press_detach(config, record, uri, use["domain"])
                else:
                    state = VolumeCloudState.ATTACHING
        return VolumeState(
            backend_id=f"{zone}/volume/{volume_uuid}",
            state=state,
            size_gib=size_gib,
            attached_to=attached_to,
            device=device,
            fault=fault,
            idempotency_key=meta["idempotency-key"],
            name=meta.get("name", ""),
            metadata={"path": str(record.final)},
        )

    def _press_detach(self, config: dict, record: Record, uri: str, domain_uuid: str) -> None:
        """A guest misses the unplug request while it boots (as it misses the power button): ask
        again while it still holds the disk, though not within REPRESS_SECONDS of the last request,
        as a second press then cancels the first."""
        pressed = record.directory / "detach-pressed"
        with contextlib.suppress(FileNotFoundError):
            if time.time() - pressed.stat().st_mtime < REPRESS_SECONDS:
                return
        pressed.touch()
        self._host(config, uri, "detach_disk", domain_uuid=domain_uuid, path=str(record.final))

    def _volume(self, backend_id: str) -> tuple[str, dict, Record, dict]:
        zone, volume_uuid = self._parse_storage_id(backend_id, "volume")
        config = self._storage_config(zone, Capability.VOLUMES)
        record = self._volume_record(config, volume_uuid)
        meta = record.meta
        if meta is None or meta.get("zone") != zone:
            raise NotFound("The volume no longer exists in the cloud.", f"no volume {record.directory}")
        return zone, config, record, meta

    def get_volume(self, backend_id: str) -> VolumeState:
        zone, config, record, meta = self._volume(backend_id)
        return self._volume_state(config, zone, record, meta, self._disk_users(config, [str(record.final)]))

    def find_volume(self, zone: str, idempotency_key: str) -> VolumeState | None:
        try:
            found = self.get_volume(f"{zone}/volume/{storage_uuid_for(idempotency_key)}")
        except NotFound:
            return None
        return found if found.idempotency_key == idempotency_key else None

    def list_volumes(self, zone: str) -> list[VolumeState]:
        config = self._storage_config(zone, Capability.VOLUMES)
        root = self._volume_record(config, "-").directory.parent
        records = [
            (Record(path, "volume.qcow2"), read_json(path / "meta.json")) for path in sorted(root.glob("*-*"))
        ]
        records = [(record, meta) for record, meta in records if meta and meta.get("zone") == zone]
        users = self._disk_users(config, [str(record.final) for record, _ in records]) if records else {}
        return [self._volume_state(config, zone, record, meta, users) for record, meta in records]

    def attach_volume(self, backend_id: str, server_id: str) -> None:
        zone, config, record, _meta = self._volume(backend_id)
        if self._parse_id(server_id)[0] != zone:
            raise Rejected(
                "A volume attaches only to servers in its own zone.", f"{backend_id} to {server_id}"
            )
        if not record.final.exists():
            raise Rejected("The volume is not ready yet.", f"{record.final} not made")
        _config, uri, domain_uuid, _summary = self._locate(server_id)
        user = self._disk_users(config, [str(record.final)]).get(str(record.final))
        if user is not None and user[1]["domain"] != domain_uuid:
            raise Rejected("The volume is attached to another server. Detach it first.", f"used by {user}")
        serial = record.directory.name.replace("-", "")[:20]
        self._host(config, uri, "attach_disk", domain_uuid=domain_uuid, path=str(record.final), serial=serial)

    def detach_volume(self, backend_id: str, server_id: str) -> None:
        _zone, config, record, _meta = self._volume(backend_id)
        try:
            _config, uri, domain_uuid, _summary = self._locate(server_id)
        except NotFound:
            return  # the server is gone, and with it the attachment
        (record.directory / "detach-pressed").touch()
        self._host(config, uri, "detach_disk", domain_uuid=domain_uuid, path=str(record.final))

    def extend_volume(self, backend_id: str, size_gib: int) -> None:
        zone, config, record, meta = self._volume(backend_id)
        users = self._disk_users(config, [str(record.final)])
        current = self._volume_state(config, zone, record, meta, users)
        if current.state not in (VolumeCloudState.AVAILABLE, VolumeCloudState.IN_USE):
            raise Rejected(f"The volume is {current.state} and can't grow right now.", backend_id)
        if size_gib < current.size_gib:
            raise Rejected(f"Volumes only grow: this one is {current.size_gib} GiB.", f"asked {size_gib} GiB")
        if size_gib == current.size_gib:
            return
        user = users.get(str(record.final))
        if user is not None and user[1]["live"]:
            uri, use = user
            self._host(
                config,
                uri,
                "resize_disk",
                domain_uuid=use["domain"],
                path=str(record.final),
                size_bytes=size_gib * GIB,
            )
        else:
            run_tool(["qemu-img", "resize", "-q", str(record.final), str(size_gib * GIB)])

    def delete_volume(self, backend_id: str) -> None:
        try:
            _zone, config, record, _meta = self._volume(backend_id)
        except NotFound:
            return
        if str(record.final) in self._disk_users(config, [str(record.final)]):
            raise Rejected("The volume is attached to a server. Detach it first.", backend_id)
        with contextlib.suppress(BackendError):
            self._copy_state(config, record, cancel=True)
        shutil.rmtree(record.directory, ignore_errors=True)

    # --- snapshots ---------------------------------------------------------------------------------

    def create_snapshot(self, spec: SnapshotSpec) -> SnapshotState:
        capability = (
            Capability.SERVER_SNAPSHOTS
            if spec.source == SnapshotSource.SERVER
            else Capability.VOLUME_SNAPSHOTS
        )
        config = self._storage_config(spec.zone, capability)
        snapshot_uuid = storage_uuid_for(spec.idempotency_key)
        backend_id = f"{spec.zone}/snapshot/{snapshot_uuid}"
        record = self._snapshot_record(config, snapshot_uuid)
        if record.meta is not None and (record.final.exists() or record.job or record.failed.exists()):
            return self.get_snapshot(backend_id)
        try:
            if spec.source == SnapshotSource.SERVER:
                _config, uri, domain_uuid, summary = self._locate(spec.source_id)
                source, running = summary["meta"]["root-disk"], summary["active"]
            else:
                _zone, _config, volume, _meta = self._volume(spec.source_id)
                source = str(volume.final)
                uri, use = self._disk_users(config, [source]).get(source, ("", {}))
                domain_uuid, running = use.get("domain", ""), bool(use.get("live"))
        except NotFound:
            raise Rejected(f"The {spec.source} to snapshot no longer exists.", spec.source_id) from None
        self._prepare(config, record)
        claim(
            record.directory / "meta.json",
            {
                "idempotency-key": spec.idempotency_key,
                "name": spec.name,
                "zone": spec.zone,
                "source": str(spec.source),
                "source-id": spec.source_id,
                "min-disk-gib": gib_of(virtual_size(Path(source))),
            },
        )
        if running:
            self._start_mirror(config, record, uri, domain_uuid, source)
        else:
            self._start_convert(config, record, Path(source))
        return self.get_snapshot(backend_id)

    def copy_snapshot(self, spec: SnapshotCopySpec) -> SnapshotState:
        """The server snapshot's disk file copied (`qemu-img convert`, in the background) into the
        target zone's snapshot store, as a snapshot of that zone; idempotent like `create_snapshot`."""
        config = self._storage_config(spec.zone, Capability.IMAGE_COPY)
        snapshot_uuid = storage_uuid_for(spec.idempotency_key)
        backend_id = f"{spec.zone}/snapshot/{snapshot_uuid}"
        record = self._snapshot_record(config, snapshot_uuid)
        if record.meta is not None and (record.final.exists() or record.job or record.failed.exists()):
            return self.get_snapshot(backend_id)
        try:
            source = self.get_snapshot(spec.source_id)
        except NotFound:
            raise Rejected("The image to copy no longer exists.", spec.source_id) from None
        source_zone = self._parse_storage_id(spec.source_id, "snapshot")[0]
        if source_zone == spec.zone:
            raise Rejected(f"The image is already in {spec.zone}.", f"{spec.source_id} into its own zone")
        if source.source != SnapshotSource.SERVER or source.state != SnapshotCloudState.AVAILABLE:
            raise Rejected("Only an available image can be copied.", f"{spec.source_id}: {source.state}")
        self._storage_config(source_zone, Capability.IMAGE_COPY)
        self._prepare(config, record)
        claim(
            record.directory / "meta.json",
            {
                "idempotency-key": spec.idempotency_key,
                "name": spec.name,
                "zone": spec.zone,
                "source": str(SnapshotSource.SERVER),
                "source-id": spec.source_id,
                "min-disk-gib": source.min_disk_gib,
            },
        )
        self._start_convert(config, record, Path(source.metadata["path"]))
        return self.get_snapshot(backend_id)

    def _snapshot(self, backend_id: str) -> tuple[str, dict, Record, dict]:
        zone, snapshot_uuid = self._parse_storage_id(backend_id, "snapshot")
        config = self._storage_config(zone, Capability.VOLUME_SNAPSHOTS)
        record = self._snapshot_record(config, snapshot_uuid)
        meta = record.meta
        if meta is None or meta.get("zone") != zone:
            raise NotFound("The snapshot no longer exists in the cloud.", f"no snapshot {record.directory}")
        return zone, config, record, meta

    def _snapshot_state(self, config: dict, zone: str, record: Record, meta: dict) -> SnapshotState:
        copy, fault = self._copy_state(config, record)
        state = {"available": SnapshotCloudState.AVAILABLE, "error": SnapshotCloudState.ERROR}.get(
            copy, SnapshotCloudState.CREATING
        )
        backend_id = f"{zone}/snapshot/{record.directory.name}"
        source = SnapshotSource(meta["source"])
        ready = state == SnapshotCloudState.AVAILABLE
        return SnapshotState(
            backend_id=backend_id,
            state=state,
            size_gib=allocated_gib(record.final if ready else record.partial),
            source=source,
            image_ref=backend_id if ready and source == SnapshotSource.SERVER else "",
            min_disk_gib=int(meta["min-disk-gib"]),
            fault=fault,
            idempotency_key=meta["idempotency-key"],
            name=meta.get("name", ""),
            metadata={"path": str(record.final), "source-id": meta.get("source-id", "")},
        )

    def get_snapshot(self, backend_id: str) -> SnapshotState:
        zone, config, record, meta = self._snapshot(backend_id)
        return self._snapshot_state(config, zone, record, meta)

    def find_snapshot(self, zone: str, idempotency_key: str) -> SnapshotState | None:
        try:
            found = self.get_snapshot(f"{zone}/snapshot/{storage_uuid_for(idempotency_key)}")
        except NotFound:
            return None
        return found if found.idempotency_key == idempotency_key else None

    def list_snapshots(self, zone: str) -> list[SnapshotState]:
        config = self._storage_config(zone, Capability.VOLUME_SNAPSHOTS)
        root = self._snapshot_record(config, "-").directory.parent
        states = []
        for path in sorted(root.glob("*-*")):
            meta = read_json(path / "meta.json")
            if meta and meta.get("zone") == zone:
                states.append(self._snapshot_state(config, zone, Record(path, "disk.qcow2"), meta))
        return states

    def delete_snapshot(self, backend_id: str) -> None:
        try:
            _zone, config, record, _meta = self._snapshot(backend_id)
        except NotFound:
            return
        # A server launched from it has its root disk on top of it (a qcow2 overlay).
        for _uri, survey in self._surveys(config, all_hosts=True):
            users = [d["name"] for d in survey["domains"] if d["meta"].get("image-ref") == backend_id]
            if users:
                raise Rejected(
                    "Servers launched from this snapshot still use it. Delete them first.",
                    f"{backend_id} is the image of {users}",
                )
        with contextlib.suppress(BackendError):
            self._copy_state(config, record, cancel=True)
        shutil.rmtree(record.directory, ignore_errors=True)

    # --- restoring a server's disk ----------------------------------------------------------------

    def rebuild_server(self, backend_id: str, *, image_ref: str, rebuild_key: str) -> None:
        """A new root disk for the server: a qcow2 overlay on the snapshot's image (as a server
        launched from it gets), at least as large as the disk it replaces, swapped in on the host
        (`rebuild_disk`: powered off if it runs, started again after). The domain's metadata then
        names the snapshot (`image-ref`, so the snapshot is not deleted from under it) and the key."""
        zone = self._parse_id(backend_id)[0]
        config = self._storage_config(zone, Capability.SERVER_REBUILD)
        config, uri, domain_uuid, summary = self._locate(backend_id)
        meta = summary["meta"]
        if meta.get("rebuild-id") == rebuild_key:
            return  # asked before: done (the swap is one host call)
        if summary["state"] not in ("running", "stopped"):
            raise Rejected(
                f"The server is {summary['state']} and can't have its disk restored right now.",
                f"rebuild {backend_id}: {summary['state']}",
            )
        image = self._snapshot_image(zone, image_ref)
        directory = Path(meta.get("directory") or "")
        root = directory / "root.qcow2"
        if directory.name != domain_uuid or not root.is_file():
            raise Rejected(
                "This server's disk can't be restored in this zone.", f"no root disk file for {backend_id}"
            )
        current = virtual_size(root)
        needed = int(
            json.loads(run_tool(["qemu-img", "info", "-U", "--output=json", str(image)]))["virtual-size"]
        )
        if needed > current:
            raise Rejected(
                f"That snapshot needs a disk of at least {gib_of(needed)} GiB; this server's is {gib_of(current)} GiB.",
                f"{image} is {needed} bytes, root disk {current}",
            )
        fresh = directory / f"root.rebuild-{rebuild_key[:8]}.qcow2"
        fresh.unlink(missing_ok=True)
        create_overlay(image, fresh, current)
        run_as = self._run_as(config) if embedded_root(uri) else None
        if run_as and os.geteuid() == 0:
            account = pwd.getpwnam(run_as)
            os.chown(fresh, account.pw_uid, account.pw_gid)
        changes = {"rebuild-id": rebuild_key, "image-ref": image_ref}
        self._host(
            config,
            uri,
            "rebuild_disk",
            domain_uuid=domain_uuid,
            root=str(root),
            fresh=str(fresh),
            changes=changes,
        )

    def _snapshot_image(self, zone: str, image_ref: str) -> Path:
        """The image file of a server snapshot, for a server booted from it (`image_backend_id`)."""
        try:
            snapshot = self.get_snapshot(image_ref)
        except NotFound:
            raise Rejected("The snapshot to launch from no longer exists.", image_ref) from None
        if snapshot.source != SnapshotSource.SERVER or snapshot.state != SnapshotCloudState.AVAILABLE:
            raise Rejected(
                "Only a completed server snapshot can be launched.", f"{image_ref}: {snapshot.state}"
            )
        if self._parse_storage_id(image_ref, "snapshot")[0] != zone:
            raise Rejected("A snapshot launches only in its own zone.", f"{image_ref} in {zone}")
        return Path(snapshot.metadata["path"])
