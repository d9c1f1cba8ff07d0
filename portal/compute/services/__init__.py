"""Writes that create, change and remove compute resources, one module per resource: servers
(`instances`, re-exported here: `services.instance_launch`), `keys`, `firewalls`, `volumes`. Each
takes `access`, checks the role, validates, changes rows under a lock, records an audit event and
enqueues cloud work after commit."""

from portal.compute.services.instances import (
    NAME_MAX_LENGTH,
    NAME_RE,
    NAME_RULE,
    ROOT_DISK_MAX_GIB,
    ComputeRefused,
    LaunchRequest,
    PlacementDenied,
    Problem,
    QuotaExceeded,
    instance_action,
    instance_launch,
    instance_set_protection,
    instance_set_reverse_dns,
    launch_names,
    launch_problems,
    validate_launch,
)
from portal.compute.services.launch_volumes import NewVolume

__all__ = [
    "NAME_MAX_LENGTH",
    "NAME_RE",
    "NAME_RULE",
    "ROOT_DISK_MAX_GIB",
    "ComputeRefused",
    "LaunchRequest",
    "NewVolume",
    "PlacementDenied",
    "Problem",
    "QuotaExceeded",
    "instance_action",
    "instance_launch",
    "instance_set_protection",
    "instance_set_reverse_dns",
    "launch_names",
    "launch_problems",
    "validate_launch",
]
