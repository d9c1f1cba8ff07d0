"""Private networks of the simulated cloud (a mixin of `SimulatedBackend`), as database rows.

They behave like Neutron's: a network is made with its subnet at once; a server gets a port with
the lowest free address of the subnet (the first is the gateway's), allocated under the network
row's lock so no two servers share one; deleting a network a server is attached to is refused, as
Neutron's 409 "in use"; a deleted server's ports go with it. Calls fail transiently as often as
the knobs say. A zone's settings may declare the capability absent (`{"absent": ["private_networks"]}`).
"""

from __future__ import annotations

import ipaddress
import uuid

from django.db import transaction

from portal.compute.backends.base import BackendState, Capability, NotFound, Rejected, not_available
from portal.compute.backends.networks import NetworkCloudState, NetworkSpec, NetworkState

NETWORK_GONE = "The network no longer exists in the cloud."
SERVER_ATTACHABLE = {BackendState.RUNNING, BackendState.STOPPED}


def _models():
    from portal.compute.models import SimulatedNetwork, SimulatedServer

    return SimulatedNetwork, SimulatedServer


def free_address(cidr: str, taken: set[str]) -> str | None:
    """The lowest host address of `cidr` that is neither the gateway (the first) nor taken."""
    hosts = ipaddress.ip_network(cidr).hosts()
    next(hosts, None)  # the gateway's
    return next((str(host) for host in hosts if str(host) not in taken), None)


class SimulatedNetworks:
    """Needs the host class's `_call()`, `_row()` and `capabilities()`."""

    def _network_row(self, backend_id: str, *, lock: bool = False):
        SimulatedNetwork, _ = _models()
        rows = SimulatedNetwork.objects.select_for_update() if lock else SimulatedNetwork.objects
        row = rows.filter(backend_id=backend_id, deleted=False).first()
        if row is None:
            raise NotFound(NETWORK_GONE, f"simulated network {backend_id} not found")
        return row

    def _network_state(self, row) -> NetworkState:
        return NetworkState(
            backend_id=row.backend_id,
            state=NetworkCloudState(row.state),
            cidr=row.cidr,
            name=row.name,
            idempotency_key=row.idempotency_key,
            ports=dict(row.ports),
        )

    def create_network(self, spec: NetworkSpec) -> NetworkState:
        if Capability.PRIVATE_NETWORKS not in self.capabilities(spec.zone):
            raise not_available(Capability.PRIVATE_NETWORKS, spec.zone)
        try:
            network = ipaddress.IPv4Network(spec.cidr)
        except ValueError:
            raise Rejected(f"{spec.cidr} is not an IPv4 network.") from None
        if network.prefixlen > 29:
            raise Rejected(f"{spec.cidr} is too small for servers.")
        self._call()
        SimulatedNetwork, _ = _models()
        row = SimulatedNetwork.objects.create(
            backend_id=f"simnet-{uuid.uuid4().hex[:12]}",
            idempotency_key=spec.idempotency_key,
            zone_code=spec.zone,
            name=spec.name,
            cidr=str(network),
            state=NetworkCloudState.AVAILABLE,
        )
        return self._network_state(row)

    def get_network(self, backend_id: str) -> NetworkState:
        self._call()
        return self._network_state(self._network_row(backend_id))

    def find_network(self, zone: str, idempotency_key: str) -> NetworkState | None:
        SimulatedNetwork, _ = _models()
        row = (
            SimulatedNetwork.objects.filter(zone_code=zone, idempotency_key=idempotency_key, deleted=False)
            .order_by("created_at", "pk")
            .first()
        )
        return None if row is None else self._network_state(row)

    def list_networks(self, zone: str) -> list[NetworkState]:
        self._call()
        SimulatedNetwork, _ = _models()
        rows = SimulatedNetwork.objects.filter(zone_code=zone, deleted=False).order_by("pk")
        return [self._network_state(row) for row in rows]

    def attach_network(self, backend_id: str, server_id: str) -> None:
        self._call()
        with transaction.atomic():
            row = self._network_row(backend_id, lock=True)
            if server_id in row.ports:
                return  # already has its port
            server = self._row(server_id)
            if server.zone_code != row.zone_code:
                raise Rejected(
                    f"The server is in {server.zone_code} and the network in {row.zone_code}: "
                    "a server can only join networks of its own zone."
                )
            if server.state not in SERVER_ATTACHABLE:
                raise Rejected(
                    f"The server is {server.state}: only a running or stopped server joins a network."
                )
            address = free_address(row.cidr, set(row.ports.values()))
            if address is None:
                raise Rejected(f"No addresses left in {row.cidr}.")
            row.ports = {**row.ports, server_id: address}
            row.save(update_fields=["ports"])

    def detach_network(self, backend_id: str, server_id: str) -> None:
        self._call()
        with transaction.atomic():
            row = self._network_row(backend_id, lock=True)
            if server_id in row.ports:
                row.ports = {key: value for key, value in row.ports.items() if key != server_id}
                row.save(update_fields=["ports"])

    def delete_network(self, backend_id: str) -> None:
        self._call()
        with transaction.atomic():
            try:
                row = self._network_row(backend_id, lock=True)
            except NotFound:
                return
            if row.ports:
                raise Rejected(
                    f"The network has {len(row.ports)} server(s) attached: detach them first.",
                    f"simulated network {backend_id} in use",
                )
            row.deleted = True
            row.save(update_fields=["deleted"])

    def _leave_networks(self, server_id: str) -> None:
        """A deleted server's ports go with it, as Neutron's do with Nova's servers."""
        SimulatedNetwork, _ = _models()
        for row in SimulatedNetwork.objects.select_for_update().filter(
            deleted=False, ports__has_key=server_id
        ):
            row.ports = {key: value for key, value in row.ports.items() if key != server_id}
            row.save(update_fields=["ports"])
