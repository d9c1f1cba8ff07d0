"""Every call to a cloud goes through `ComputeBackend` (base.py). `get_backend(name)` returns the
one configured under that name in settings.COMPUTE_BACKENDS; a zone says which name serves it."""

from portal.compute.backends.base import (
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
)

__all__ = [
    "BackendError",
    "BackendState",
    "Capability",
    "ComputeBackend",
    "NotFound",
    "Rejected",
    "ServerSpec",
    "ServerState",
    "Transient",
    "ZoneCapacity",
    "get_backend",
]
