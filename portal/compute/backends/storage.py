"""What the backend interface says about storage: volumes and snapshots.

The same rules as servers (base.py): calls submit and return, the caller polls `get_volume` /
`get_snapshot`; errors are `Transient`, `Rejected` or `NotFound`; every object the portal creates
carries the portal's UUID (`idempotency_key`) in the cloud's own metadata, so a retried create
adopts what the first try made (`find_volume`, `find_snapshot`) instead of making a second.

A snapshot of a server is an image the cloud can boot (`SnapshotState.image_ref`, passed back as
`ServerSpec.image_backend_id`); a snapshot of a volume can become a new volume
(`VolumeSpec.source_snapshot`).

A server snapshot (an image) is copied into another zone of the same cloud with `copy_snapshot`
(`SnapshotCopySpec`): the copy is a snapshot of its own in the target zone, with the copy's portal
UUID in the cloud's metadata, polled, found and deleted like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# Metadata key that carries the portal's UUID of a volume or snapshot.
STORAGE_METADATA_KEY = "portal-storage-id"


class VolumeCloudState(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    ATTACHING = "attaching"
    IN_USE = "in_use"
    DETACHING = "detaching"
    EXTENDING = "extending"
    DELETING = "deleting"
    ERROR = "error"


class SnapshotCloudState(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    DELETING = "deleting"
    ERROR = "error"


class SnapshotSource(StrEnum):
    SERVER = "server"  # the server's root disk, as a bootable image
    VOLUME = "volume"


@dataclass(frozen=True)
class VolumeSpec:
    idempotency_key: str  # the portal's Volume UUID; stored in the cloud's metadata
    name: str
    zone: str
    size_gib: int
    source_snapshot: str = ""  # backend id of a volume snapshot to copy, or ""


@dataclass(frozen=True)
class VolumeState:
    backend_id: str
    state: VolumeCloudState
    size_gib: int
    attached_to: str = ""  # backend id of the server it is attached to
    device: str = ""  # the device the guest sees, e.g. /dev/vdb ("" when the cloud does not say)
    fault: str = ""
    idempotency_key: str = ""
    name: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SnapshotSpec:
    idempotency_key: str  # the portal's Snapshot UUID
    name: str
    zone: str
    source: SnapshotSource
    source_id: str  # backend id of the server or the volume


@dataclass(frozen=True)
class SnapshotState:
    backend_id: str
    state: SnapshotCloudState
    size_gib: int  # what it occupies (billed), rounded up
    source: SnapshotSource
    image_ref: str = ""  # for a server snapshot: what ServerSpec.image_backend_id takes to boot it
    min_disk_gib: int = 0
    fault: str = ""
    idempotency_key: str = ""
    name: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SnapshotCopySpec:
    idempotency_key: str  # the portal's UUID of the copy (a Snapshot of its own)
    name: str
    zone: str  # where the copy goes: another zone of the same cloud
    source_id: str  # backend id of the server snapshot to copy
