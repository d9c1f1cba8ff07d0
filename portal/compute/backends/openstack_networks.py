"""Private networks on OpenStack: a Neutron network with one IPv4 subnet, and a port per server,
attached to it through Nova's `os-interface` (hot plug; the server must be running or stopped).

Mixed into `OpenStackBackend` (openstack.py), whose connection, zone settings and error
translation (`_connection`, `_zone`, `_cloud`, `_target`) it uses. A network's backend id is
`"<zone>:<neutron network id>"`; its description carries the portal's UUID and the zone
(`NETWORK_KEY_PREFIX`), which Neutron filters on exactly, so a create repeated after a lost
answer adopts the first network. A port is named after its server (`portal-<nova id>`): a repeated
attach finds it and binds it instead of making a second. Detaching deletes the port (Neutron tells
Nova, which unplugs it). Deleting a server leaves the ports the portal made unbound (Nova deletes
only ports it created itself); they are deleted with the network, which Neutron refuses (409
NetworkInUse) while a server still has a port on it.
"""

from __future__ import annotations

from contextlib import suppress

from openstack import exceptions as sdk_exceptions

from portal.compute.backends.base import Capability, NotFound, Rejected, not_available
from portal.compute.backends.networks import NETWORK_KEY_PREFIX, NetworkCloudState, NetworkSpec, NetworkState

NETWORK_GONE = "The network no longer exists in the cloud."
NETWORK_IN_USE = "Servers are still attached to the network in the cloud: detach them first."


def network_fault(message: str) -> str:
    """A customer sentence for Neutron's or Nova's refusal of a network request."""
    lowered = message.lower()
    if "overlaps with another subnet" in lowered:
        return "The range overlaps another subnet of this network in the cloud."
    if "no more ip addresses" in lowered:
        return "No addresses are left in the network's range."
    if "in use" in lowered:
        return NETWORK_IN_USE
    if "attach_interface" in lowered:
        return "The server is busy right now, so it cannot join the network. Try again once it has settled."
    return "The cloud refused the network request."


def _description(key: str, zone: str) -> str:
    return f"{NETWORK_KEY_PREFIX}{key}@{zone}"


class OpenStackNetworks:
    def _network_target(self, backend_id: str) -> tuple[str, str]:
        zone, _, network_id = backend_id.partition(":")
        if not zone or not network_id:
            raise NotFound(NETWORK_GONE, f"malformed network id {backend_id!r}")
        return zone, network_id

    def _network_state(self, conn, zone: str, network) -> NetworkState:
        subnets = list(conn.network.subnets(network_id=network.id))
        ports = {}
        for port in conn.network.ports(network_id=network.id):
            if port.device_id and (port.device_owner or "").startswith("compute:") and port.fixed_ips:
                ports[f"{zone}:{port.device_id}"] = port.fixed_ips[0]["ip_address"]
        key = (network.description or "").removeprefix(NETWORK_KEY_PREFIX).partition("@")[0]
        return NetworkState(
            backend_id=f"{zone}:{network.id}",
            state=NetworkCloudState.AVAILABLE if subnets else NetworkCloudState.CREATING,
            cidr=subnets[0].cidr if subnets else "",
            name=network.name or "",
            idempotency_key=key,
            ports=ports,
        )

    def _subnet_for(self, conn, network_id: str, spec: NetworkSpec) -> None:
        conn.network.create_subnet(
            network_id=network_id, cidr=spec.cidr, ip_version=4, name=spec.name, enable_dhcp=True
        )

    def create_network(self, spec: NetworkSpec) -> NetworkState:
        if Capability.PRIVATE_NETWORKS not in self.capabilities(spec.zone):
            raise not_available(Capability.PRIVATE_NETWORKS, spec.zone)
        found = self.find_network(spec.zone, spec.idempotency_key, finish=spec)
        if found is not None:
            return found
        conn = self._connection(spec.zone)
        with self._cloud("create network", conn, fault=network_fault):
            network = conn.network.create_network(
                name=spec.name, description=_description(spec.idempotency_key, spec.zone)
            )
            self._subnet_for(conn, network.id, spec)
            return self._network_state(conn, spec.zone, network)

    def get_network(self, backend_id: str) -> NetworkState:
        zone, network_id = self._network_target(backend_id)
        conn = self._connection(zone)
        with self._cloud("get network", conn, gone=("networks", network_id, NETWORK_GONE)):
            return self._network_state(conn, zone, conn.network.get_network(network_id))

    def find_network(
        self, zone: str, idempotency_key: str, *, finish: NetworkSpec | None = None
    ) -> NetworkState | None:
        """The network made with this key (the oldest); one whose subnet a lost answer left
        unmade gets it when `finish` says what it is to be."""
        conn = self._connection(zone)
        with self._cloud("find network", conn, fault=network_fault):
            wanted = _description(idempotency_key, zone)
            ours = [n for n in conn.network.networks(description=wanted) if n.description == wanted]
            if not ours:
                return None
            network = sorted(ours, key=lambda n: (n.created_at or "", n.id))[0]
            state = self._network_state(conn, zone, network)
            if state.state == NetworkCloudState.CREATING and finish is not None:
                self._subnet_for(conn, network.id, finish)
                state = self._network_state(conn, zone, network)
            return state

    def list_networks(self, zone: str) -> list[NetworkState]:
        conn = self._connection(zone)
        with self._cloud("list networks", conn):
            return [
                self._network_state(conn, zone, n)
                for n in conn.network.networks()
                if (n.description or "").startswith(NETWORK_KEY_PREFIX)
                and (n.description or "").endswith(f"@{zone}")
            ]

    def attach_network(self, backend_id: str, server_id: str) -> None:
        zone, network_id = self._network_target(backend_id)
        server_zone, nova_id = self._target(server_id)
        if server_zone != zone:
            raise Rejected(
                f"The server is in {server_zone} and the network in {zone}: "
                "a server can only join networks of its own zone."
            )
        conn = self._connection(zone)
        gone = ("networks", network_id, NETWORK_GONE)
        with self._cloud("attach network", conn, nova_id, gone=gone, fault=network_fault):
            conn.network.get_network(network_id)
            name = f"portal-{nova_id}"
            ports = list(conn.network.ports(network_id=network_id, name=name))
            if any(p.device_id == nova_id for p in ports):
                return  # already attached
            port = next((p for p in ports if not p.device_id), None)
            if port is None:
                subnets = list(conn.network.subnets(network_id=network_id))
                if not subnets:
                    raise Rejected("The network is still being created: try again in a moment.")
                port = conn.network.create_port(
                    network_id=network_id, name=name, fixed_ips=[{"subnet_id": subnets[0].id}]
                )
            try:
                conn.compute.create_server_interface(nova_id, port_id=port.id)
            except sdk_exceptions.SDKException:
                with suppress(sdk_exceptions.SDKException):  # leave no unbound port behind
                    conn.network.delete_port(port.id, ignore_missing=True)
                raise

    def detach_network(self, backend_id: str, server_id: str) -> None:
        zone, network_id = self._network_target(backend_id)
        _, nova_id = self._target(server_id)
        conn = self._connection(zone)
        with self._cloud(
            "detach network", conn, gone=("networks", network_id, NETWORK_GONE), fault=network_fault
        ):
            for port in conn.network.ports(network_id=network_id):
                if port.device_id == nova_id or port.name == f"portal-{nova_id}":
                    conn.network.delete_port(port.id, ignore_missing=True)

    def delete_network(self, backend_id: str) -> None:
        zone, network_id = self._network_target(backend_id)
        conn = self._connection(zone)
        with self._cloud("delete network", conn, fault=network_fault):
            try:
                ports = list(conn.network.ports(network_id=network_id))
            except sdk_exceptions.NotFoundException:
                return
            for port in ports:  # ports the portal made whose server is gone: unbound
                if (port.name or "").startswith("portal-") and not port.device_id:
                    conn.network.delete_port(port.id, ignore_missing=True)
            try:
                conn.network.delete_network(network_id, ignore_missing=True)
            except sdk_exceptions.ConflictException as error:
                raise Rejected(NETWORK_IN_USE, f"delete network {network_id}: {error}") from error
