"""What a cloud says about a private network (Capability.PRIVATE_NETWORKS): one IPv4 subnet per
network, and a port per server attached to it, whose address the cloud allocates inside the CIDR.

A network carries the portal's UUID in the cloud (`NETWORK_KEY_PREFIX` in its description on
OpenStack, a column in the simulated cloud) so a create repeated after a lost answer adopts the
first network instead of making a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# The description of a network made by the portal: this prefix and the network's UUID.
NETWORK_KEY_PREFIX = "portal-network:"


class NetworkCloudState(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    ERROR = "error"


@dataclass(frozen=True)
class NetworkSpec:
    idempotency_key: str  # the network's UUID in the portal
    name: str
    zone: str
    cidr: str  # an IPv4 private range, "10.20.0.0/24"


@dataclass(frozen=True)
class NetworkState:
    backend_id: str
    state: NetworkCloudState
    cidr: str
    name: str = ""
    idempotency_key: str = ""
    fault: str = ""
    # The servers attached (their backend ids) and the address each has inside the network.
    ports: dict[str, str] = field(default_factory=dict)
