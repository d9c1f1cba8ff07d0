"""What each kind of operation asks the cloud, how its end is recognised, and what it leaves.

`OPERATIONS` has one `Kind` per `Operation.action`. The runner (`portal.compute.runner`) knows
nothing else about a kind: it claims operations, groups them by backend, kind and phase, and
calls the entry's functions with lists (one operation is a list of one). Adding a kind of
operation is an entry here and the backend calls it makes; see docs/architecture.md.

`kinds.py` says what a kind is; `servers.py`, `volumes.py`, `snapshots.py`, `firewalls.py` and
`networks.py` hold the entries of each target.
"""

from __future__ import annotations

from portal.compute.operations.firewalls import FIREWALL_OPERATIONS
from portal.compute.operations.kinds import Answers, Kind, Progress, each
from portal.compute.operations.networks import NETWORK_OPERATIONS
from portal.compute.operations.servers import SERVER_OPERATIONS, STATUS_FOR, server_specs
from portal.compute.operations.snapshots import SNAPSHOT_OPERATIONS
from portal.compute.operations.volumes import VOLUME_OPERATIONS

OPERATIONS: dict[str, Kind] = {
    **SERVER_OPERATIONS,
    **VOLUME_OPERATIONS,
    **SNAPSHOT_OPERATIONS,
    **FIREWALL_OPERATIONS,
    **NETWORK_OPERATIONS,
}

__all__ = ["OPERATIONS", "STATUS_FOR", "Answers", "Kind", "Progress", "each", "server_specs"]
