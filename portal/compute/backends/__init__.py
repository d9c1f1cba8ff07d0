"""Every call to a cloud goes through `ComputeBackend` (base.py). `get_backend(name)` returns the
one configured under that name in settings.COMPUTE_BACKENDS; a zone says which name serves it."""

from portal.compute.backends.base import (
    CAPABILITY_NAMES,
    REBUILD_METADATA_KEY,
    BackendError,
    BackendState,
    Capability,
    ComputeBackend,
    NotFound,
    Rejected,
    ServerSpec,
    ServerState,
    Transient,
    ZoneCapacity,
    get_backend,
    not_available,
)
from portal.compute.backends.console import ConsoleClosed, ConsoleStream, RemoteConsole
from portal.compute.backends.networks import NetworkCloudState, NetworkSpec, NetworkState
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

__all__ = [
    "CAPABILITY_NAMES",
    "REBUILD_METADATA_KEY",
    "STORAGE_METADATA_KEY",
    "BackendError",
    "BackendState",
    "Capability",
    "ComputeBackend",
    "ConsoleClosed",
    "ConsoleStream",
    "NetworkCloudState",
    "NetworkSpec",
    "NetworkState",
    "NotFound",
    "Rejected",
    "RemoteConsole",
    "ServerSpec",
    "ServerState",
    "SnapshotCloudState",
    "SnapshotCopySpec",
    "SnapshotSource",
    "SnapshotSpec",
    "SnapshotState",
    "Transient",
    "VolumeCloudState",
    "VolumeSpec",
    "VolumeState",
    "ZoneCapacity",
    "get_backend",
    "not_available",
]
