"""Cinder v3: volumes, their metadata, `os-extend`, and snapshots, for one project (`p-portal`).

Listed in the catalog as `block-storage` with its version document, which is how a cloud shows it
can make volumes. Statuses move over time like the fake's servers do: a volume is `creating` for
`create_seconds`, then `available`; `os-extend` makes it `extending` for `action_seconds`; a delete
makes it `deleting` for `delete_seconds`, then it is gone (404). Attaching and detaching are Nova's
(`compute_storage.py`), which moves the volume through `reserved`/`attaching` to `in-use` and
through `detaching` back to `available` with the calls below.

Refusals are Cinder's, in its words and codes: 400 for a request against the volume's status (an
attached volume deleted, an extend that does not grow it, a snapshot of a volume not available
without `force`), 404 for an unknown id, 413 over the gigabytes quota, 400 for a missing or invalid
field. Without this service in the cloud, a server booting from a volume fails to build, as Nova's
does when it cannot reach Cinder.
"""

from __future__ import annotations

import ast
import time
import uuid
from dataclasses import dataclass, field

from tests.backends.fake_openstack.server import HttpError, Service, now_iso

CINDER_MAX_MICROVERSION = "3.70"
PROJECT_ID = "p-portal"
# Statuses Cinder lets a volume be deleted from (cinder.volume.api.API.delete).
DELETABLE = ("available", "error", "error_restoring", "error_extending", "error_managing")
DELETE_REFUSED = (
    "Invalid volume: Volume status must be available or error or error_restoring or error_extending or "
    "error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a "
    "transfer, or be disassociated from snapshots after volume transfer."
)


def cinder_error(status: int, message: str) -> HttpError:
    key = {400: "badRequest", 403: "forbidden", 404: "itemNotFound", 409: "conflictingRequest"}.get(
        status, "overLimit" if status == 413 else "computeFault"
    )
    return HttpError(status, {key: {"code": status, "message": message}})


@dataclass
class Disk:
    """One Cinder volume."""

    id: str
    name: str
    size: int
    availability_zone: str
    metadata: dict
    description: str = ""
    snapshot_id: str | None = None
    volume_type: str = "__DEFAULT__"
    status: str = "creating"
    attachments: list = field(default_factory=list)  # Cinder's view: only completed attachments
    created_at: str = field(default_factory=now_iso)
    lands_at: float = 0.0
    landing: object = None


@dataclass
class Snap:
    """One Cinder snapshot."""

    id: str
    name: str
    volume_id: str
    size: int
    metadata: dict
    description: str = ""
    status: str = "creating"
    created_at: str = field(default_factory=now_iso)
    lands_at: float = 0.0
    landing: object = None


class Volume(Service):
    name = "volume"
    catalog_type = "block-storage"
    catalog_name = "cinder"
    endpoint = f"/v3/{PROJECT_ID}"

    def __init__(
        self, cloud, *, create_seconds: float = 0.2, action_seconds: float = 0.2, delete_seconds: float = 0.1
    ) -> None:
        super().__init__(cloud)
        self.create_seconds = create_seconds
        self.action_seconds = action_seconds
        self.delete_seconds = delete_seconds
        self.volumes: dict[str, Disk] = {}
        self.snapshots: dict[str, Snap] = {}
        self.availability_zones = {"nova"}
        self.volume_types = {"__DEFAULT__", "ssd"}
        self.quota_gigabytes = 1000
        self.error_marker = "cindererror"  # a volume whose name has it ends in `error`

    # --- state -------------------------------------------------------------------------------

    def later(self, thing: Disk | Snap, seconds: float, landing) -> None:
        thing.lands_at, thing.landing = time.monotonic() + seconds, landing

    def settle(self) -> None:
        if self.cloud.is_frozen:
            return
        now = time.monotonic()
        for thing in [*self.volumes.values(), *self.snapshots.values()]:
            if thing.landing is not None and thing.lands_at <= now:
                landing, thing.landing = thing.landing, None
                landing(thing)

    def volume(self, volume_id: str) -> Disk:
        volume = self.volumes.get(volume_id)
        if volume is None:
            raise cinder_error(404, f"Volume {volume_id} could not be found.")
        return volume

    def _snapshot(self, snapshot_id: str) -> Snap:
        snapshot = self.snapshots.get(snapshot_id)
        if snapshot is None:
            raise cinder_error(404, f"Snapshot {snapshot_id} could not be found.")
        return snapshot

    def _consumed(self) -> int:
        return sum(v.size for v in self.volumes.values()) + sum(s.size for s in self.snapshots.values())

    def _check_quota(self, gigabytes: int) -> None:
        consumed = self._consumed()
        if consumed + gigabytes > self.quota_gigabytes:
            raise cinder_error(
                413,
                "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes "
                f"quota. Requested {gigabytes}G, quota is {self.quota_gigabytes}G and {consumed}G has been "
                "consumed.",
            )

    # --- requests ----------------------------------------------------------------------------

    def handle(self, method: str, rest: list, query: dict, headers, body: dict | None):
        if method == "GET" and not rest:
            return 300, {"versions": [self._version()]}, {}
        if method == "GET" and rest in (["v3"], ["v3", PROJECT_ID]):
            return 200, {"versions": [self._version()]}, {}
        if rest[:2] != ["v3", PROJECT_ID]:
            return self.not_found(headers)
        microversion = _microversion(headers)
        answer = self._cinder(method, rest[2:], query, body or {}, microversion)
        if answer is None:
            return self.not_found(headers)
        status, payload, extra = answer
        return status, payload, {**extra, "OpenStack-API-Version": f"volume {microversion}"}

    def _cinder(self, method: str, route: list, query: dict, body: dict, microversion: str):
        match (method, route):
            case ("POST", ["volumes"]):
                return self._create(body.get("volume"), microversion)
            case ("GET", ["volumes"]) | ("GET", ["volumes", "detail"]):
                volumes = _filtered(self.volumes.values(), query)
                if route == ["volumes"]:
                    return 200, {"volumes": [{"id": v.id, "name": v.name, "links": []} for v in volumes]}, {}
                return 200, {"volumes": [self.volume_view(v) for v in volumes]}, {}
            case ("GET", ["volumes", volume_id]):
                return 200, {"volume": self.volume_view(self.volume(volume_id))}, {}
            case ("DELETE", ["volumes", volume_id]):
                return self._delete(self.volume(volume_id))
            case ("POST", ["volumes", volume_id, "action"]):
                return self._action(self.volume(volume_id), body, microversion)
            case ("GET", ["volumes", volume_id, "metadata"]):
                return 200, {"metadata": self.volume(volume_id).metadata}, {}
            case ("PUT", ["volumes", volume_id, "metadata"]) | ("POST", ["volumes", volume_id, "metadata"]):
                volume = self.volume(volume_id)
                metadata = _metadata(body.get("metadata"))
                volume.metadata = metadata if method == "PUT" else {**volume.metadata, **metadata}
                return 200, {"metadata": volume.metadata}, {}
            case ("POST", ["snapshots"]):
                return self._snapshot_create(body.get("snapshot"), microversion)
            case ("GET", ["snapshots"]) | ("GET", ["snapshots", "detail"]):
                snapshots = _filtered(self.snapshots.values(), query)
                return 200, {"snapshots": [self.snapshot_view(s) for s in snapshots]}, {}
            case ("GET", ["snapshots", snapshot_id]):
                return 200, {"snapshot": self.snapshot_view(self._snapshot(snapshot_id))}, {}
            case ("DELETE", ["snapshots", snapshot_id]):
                return self._snapshot_delete(self._snapshot(snapshot_id))
        return None

    def _create(self, data, microversion: str):
        if not isinstance(data, dict):
            raise cinder_error(400, "Missing required element 'volume' in request body.")
        snapshot = self._snapshot(data["snapshot_id"]) if data.get("snapshot_id") else None
        size = data.get("size")
        if size is None and snapshot is not None:
            size = snapshot.size
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise cinder_error(400, f"Volume size '{size}' must be an integer and greater than 0")
        name = data.get("name") or ""
        if len(name) > 255:
            raise cinder_error(400, "Invalid input for field/attribute name. Value is too long.")
        metadata = _metadata(data.get("metadata"))
        zone = data.get("availability_zone") or "nova"
        if zone not in self.availability_zones:
            raise cinder_error(400, f"Invalid input received: Availability zone '{zone}' is invalid.")
        volume_type = data.get("volume_type") or "__DEFAULT__"
        if volume_type not in self.volume_types:
            raise cinder_error(404, f"Volume type with name {volume_type} could not be found.")
        if snapshot is not None:
            if snapshot.status != "available":
                raise cinder_error(
                    400, "Invalid snapshot: Originating snapshot status must be one of 'available' values"
                )
            if size < snapshot.size:
                raise cinder_error(
                    400,
                    f"Invalid input received: Volume size '{size}'GB cannot be smaller than the snapshot "
                    f"size {snapshot.size}GB. They must be >= original snapshot size.",
                )
            source = self.volumes.get(snapshot.volume_id)
            if source is not None and source.availability_zone != zone:
                raise cinder_error(
                    400,
                    "Invalid input received: Volume must be in the same availability zone as the snapshot",
                )
        self._check_quota(size)
        volume = Disk(
            id=str(uuid.uuid4()),
            name=name,
            size=size,
            availability_zone=zone,
            metadata=metadata,
            description=data.get("description") or "",
            snapshot_id=snapshot.id if snapshot else None,
            volume_type=volume_type,
        )
        self.volumes[volume.id] = volume
        ends = "error" if self.error_marker in name else "available"
        self.later(volume, self.create_seconds, lambda v: setattr(v, "status", ends))
        return 202, {"volume": self.volume_view(volume)}, {}

    def _delete(self, volume: Disk):
        has_snapshots = any(s.volume_id == volume.id for s in self.snapshots.values())
        if volume.status not in DELETABLE or volume.attachments or has_snapshots:
            raise cinder_error(400, DELETE_REFUSED)
        volume.status, volume.landing = "deleting", None
        self.later(volume, self.delete_seconds, lambda v: self.volumes.pop(v.id, None))
        return 202, None, {}

    def _action(self, volume: Disk, body: dict, microversion: str):
        if len(body) != 1:
            raise cinder_error(400, "Invalid request body: one action at a time.")
        (action, args), *_ = body.items()
        if action != "os-extend":
            raise cinder_error(400, f"There is no such action: {action}")
        new_size = (args or {}).get("new_size")
        if not isinstance(new_size, int) or isinstance(new_size, bool) or new_size < 1:
            raise cinder_error(
                400, f"Invalid input for field/attribute new_size. Value: {new_size}. Not a valid integer."
            )
        # Extending an attached volume came with microversion 3.42.
        allowed = ("available", "in-use") if _version(microversion) >= (3, 42) else ("available",)
        if volume.status not in allowed:
            wanted = " or ".join(allowed)
            raise cinder_error(
                400,
                f"Invalid volume: Volume {volume.id} status must be {wanted} to extend, but current "
                f"status is: {volume.status}.",
            )
        if new_size <= volume.size:
            raise cinder_error(
                400,
                "Invalid input received: New size for extend must be greater than current size. "
                f"(current: {volume.size}, extended: {new_size}).",
            )
        self._check_quota(new_size - volume.size)
        settled = volume.status
        volume.status = "extending"

        def grown(v: Disk) -> None:
            v.size, v.status = new_size, settled

        self.later(volume, self.action_seconds, grown)
        return 202, None, {}

    def _snapshot_create(self, data, microversion: str):
        if not isinstance(data, dict) or not data.get("volume_id"):
            raise cinder_error(
                400, "Invalid input for field/attribute volume_id. 'volume_id' is a required property"
            )
        volume = self.volume(data["volume_id"])
        force = str(data.get("force", False)).lower() in ("true", "1", "yes")
        # Since 3.66 an attached volume is snapshotted without `force`.
        allowed = ("available", "in-use") if force or _version(microversion) >= (3, 66) else ("available",)
        if volume.status not in allowed:
            raise cinder_error(
                400,
                f"Invalid volume: Volume {volume.id} status must be available, but current status is: "
                f"{volume.status}.",
            )
        self._check_quota(volume.size)
        snapshot = Snap(
            id=str(uuid.uuid4()),
            name=data.get("name") or "",
            volume_id=volume.id,
            size=volume.size,
            metadata=_metadata(data.get("metadata")),
            description=data.get("description") or "",
        )
        self.snapshots[snapshot.id] = snapshot
        self.later(snapshot, self.create_seconds, lambda s: setattr(s, "status", "available"))
        return 202, {"snapshot": self.snapshot_view(snapshot)}, {}

    def _snapshot_delete(self, snapshot: Snap):
        if snapshot.status not in ("available", "error"):
            raise cinder_error(
                400,
                "Invalid snapshot: Volume Snapshot status must be available or error and must not be part "
                "of a group.",
            )
        snapshot.status, snapshot.landing = "deleting", None
        self.later(snapshot, self.delete_seconds, lambda s: self.snapshots.pop(s.id, None))
        return 202, None, {}

    # --- what Nova asks of Cinder ---------------------------------------------------------------

    def reserve(self, volume_id: str) -> Disk:
        """Nova's attach starts here: the volume must be available (else Nova answers 400)."""
        volume = self.volume(volume_id)
        if volume.status != "available":
            raise cinder_error(
                400,
                "Invalid input received: Invalid volume: Volume status must be available or downloading to "
                f"reserve, but the current status is {volume.status}.",
            )
        volume.status, volume.landing = "reserved", None
        return volume

    # --- views -------------------------------------------------------------------------------

    def volume_view(self, volume: Disk) -> dict:
        return {
            "id": volume.id,
            "name": volume.name,
            "status": volume.status,
            "size": volume.size,
            "availability_zone": volume.availability_zone,
            "created_at": volume.created_at,
            "updated_at": now_iso(),
            "attachments": [dict(a) for a in volume.attachments],
            "metadata": dict(volume.metadata),
            "description": volume.description,
            "volume_type": volume.volume_type,
            "snapshot_id": volume.snapshot_id,
            "source_volid": None,
            "bootable": "false",
            "encrypted": False,
            "multiattach": False,
            "replication_status": None,
            "consistencygroup_id": None,
            "group_id": None,
            "migration_status": None,
            "user_id": "u-portal",
            "os-vol-tenant-attr:tenant_id": PROJECT_ID,
            "links": [
                {"rel": "self", "href": f"{self.cloud.url}/volume/v3/{PROJECT_ID}/volumes/{volume.id}"}
            ],
        }

    def snapshot_view(self, snapshot: Snap) -> dict:
        return {
            "id": snapshot.id,
            "name": snapshot.name,
            "description": snapshot.description,
            "status": snapshot.status,
            "size": snapshot.size,
            "volume_id": snapshot.volume_id,
            "metadata": dict(snapshot.metadata),
            "created_at": snapshot.created_at,
            "updated_at": now_iso(),
            "os-extended-snapshot-attributes:progress": "100%" if snapshot.status == "available" else "0%",
            "os-extended-snapshot-attributes:project_id": PROJECT_ID,
            "group_snapshot_id": None,
            "user_id": "u-portal",
        }

    def _version(self) -> dict:
        return {
            "id": "v3.0",
            "status": "CURRENT",
            "version": CINDER_MAX_MICROVERSION,
            "min_version": "3.0",
            "updated": "2023-08-31T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self.cloud.url}/volume/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}
            ],
        }


def _metadata(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or any(
        not isinstance(k, str) or not isinstance(v, str) or not 0 < len(k) <= 255 or len(v) > 255
        for k, v in value.items()
    ):
        raise cinder_error(400, f"Invalid input for field/attribute metadata. Value: {value}.")
    return dict(value)


def _filtered(things, query: dict) -> list:
    """Cinder's list filters: `name`, `status`, `volume_id`, and `metadata` (a dict literal that
    Cinder reads with ast.literal_eval); oldest last, as Cinder sorts by created_at descending."""
    found = list(things)
    for key in ("name", "status", "volume_id", "availability_zone"):
        if key in query:
            found = [t for t in found if getattr(t, key, None) == query[key][0]]
    if "metadata" in query:
        try:
            wanted = ast.literal_eval(query["metadata"][0])
        except (ValueError, SyntaxError):
            raise cinder_error(400, f"Invalid filter: metadata={query['metadata'][0]}") from None
        found = [t for t in found if all(t.metadata.get(k) == v for k, v in dict(wanted).items())]
    return sorted(found, key=lambda t: t.created_at, reverse=True)


def _microversion(headers) -> str:
    value = headers.get("OpenStack-API-Version", "")
    return value.split()[1] if value.startswith("volume ") else "3.0"


def _version(version: str) -> tuple[int, int]:
    if version == "latest":
        version = CINDER_MAX_MICROVERSION
    major, minor = version.split(".")
    return int(major), int(minor)
