"""Writes that create, change and remove compute resources, one module per resource: servers
(`instances`, re-exported here: `services.instance_launch`), `keys`, `firewalls`, `volumes`. Each
takes `access`, checks the role, validates, changes rows under a lock, records an audit event and
enqueues cloud work after commit."""

from portal.compute.services.instances import (
    NAME_RE,
    NAME_RULE,
    ComputeRefused,
    LaunchRequest,
    PlacementDenied,
    QuotaExceeded,
    instance_action,
    instance_launch,
    instance_set_protection,
    launch_names,
    validate_launch,
)

__all__ = [
    "NAME_RE",
    "NAME_RULE",
    "ComputeRefused",
    "LaunchRequest",
    "PlacementDenied",
    "QuotaExceeded",
    "instance_action",
    "instance_launch",
    "instance_set_protection",
    "launch_names",
    "validate_launch",
]
