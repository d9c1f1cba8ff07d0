"""Neutron's project networks, subnets and ports, as `Network` (network.py) serves them.

As Neutron does: a subnet's CIDR must be a valid network of its `ip_version` (400), must not
overlap another subnet of the same network (400 "overlaps with another subnet"); its gateway is
the first host and its allocation pool the rest. A port gets the lowest free address of its
subnet (409 IpAddressGenerationFailure when none is left; a requested address already taken is
409 IpAddressAlreadyAllocated). Deleting a network that still has ports other than Neutron's own
(`network:*`) is 409 NetworkInUse; deleting it otherwise takes its subnets and ports. A port
bound to a server (`device_id`, owner `compute:nova`) is bound by Nova's `os-interface`
(compute_interfaces.py); deleting the port detaches it from the server.
"""

from __future__ import annotations

import ipaddress
import uuid

from tests.backends.fake_openstack.server import now_iso


def _error(status: int, kind: str, message: str):
    from tests.backends.fake_openstack.network import neutron_error

    return neutron_error(status, kind, message)


class NeutronPorts:
    def __init__(self, network) -> None:
        self.network = network  # the Network service: its `networks` dict holds ours too
        self.subnets: dict[str, dict] = {}
        self.ports: dict[str, dict] = {}

    def route(self, method: str, route: list, query: dict, body: dict | None):
        """Answer a networks/subnets/ports request this module handles, or None."""
        match (method, route):
            case ("POST", ["networks"]):
                return 201, {"network": self.network._network_view(self._network_create(body["network"]))}, {}
            case ("DELETE", ["networks", network_id]):
                self._network_delete(network_id)
                return 204, None, {}
            case ("GET", ["subnets"]):
                return 200, {"subnets": self.network._filtered(list(self.subnets.values()), query)}, {}
            case ("GET", ["subnets", subnet_id]):
                return 200, {"subnet": self._subnet(subnet_id)}, {}
            case ("POST", ["subnets"]):
                return 201, {"subnet": self._subnet_create(body["subnet"])}, {}
            case ("GET", ["ports"]):
                return 200, {"ports": self.network._filtered(list(self.ports.values()), query)}, {}
            case ("GET", ["ports", port_id]):
                return 200, {"port": self.port(port_id)}, {}
            case ("POST", ["ports"]):
                return 201, {"port": self._port_create(body["port"])}, {}
            case ("DELETE", ["ports", port_id]):
                port = self.port(port_id)
                del self.ports[port_id]
                if port["device_id"]:
                    self.network.cloud.compute.interfaces.port_deleted(port)
                return 204, None, {}
        return None

    def subnet_ids(self, network_id: str) -> list[str]:
        return [s["id"] for s in self.subnets.values() if s["network_id"] == network_id]

    def _network(self, network_id: str) -> dict:
        if network_id not in self.network.networks:
            raise _error(404, "NetworkNotFound", f"Network {network_id} could not be found.")
        return self.network.networks[network_id]

    def _network_create(self, data: dict) -> dict:
        network = {
            "id": str(uuid.uuid4()),
            "name": data.get("name", ""),
            "description": data.get("description", ""),
            "shared": False,
            "router:external": False,
            "project_id": "p-portal",
            "tenant_id": "p-portal",
            "created_at": now_iso(),
        }
        self.network.networks[network["id"]] = network
        return network

    def _network_delete(self, network_id: str) -> None:
        self._network(network_id)
        in_use = [
            p
            for p in self.ports.values()
            if p["network_id"] == network_id and not p["device_owner"].startswith("network:")
        ]
        if in_use:
            raise _error(
                409,
                "NetworkInUse",
                f"Unable to complete operation on network {network_id}. "
                "There are one or more ports still in use on the network.",
            )
        for port_id in [p["id"] for p in self.ports.values() if p["network_id"] == network_id]:
            del self.ports[port_id]
        for subnet_id in self.subnet_ids(network_id):
            del self.subnets[subnet_id]
        del self.network.networks[network_id]

    def _subnet(self, subnet_id: str) -> dict:
        if subnet_id not in self.subnets:
            raise _error(404, "SubnetNotFound", f"Subnet {subnet_id} could not be found.")
        return self.subnets[subnet_id]

    def _subnet_create(self, data: dict) -> dict:
        network = self._network(data.get("network_id", ""))
        cidr, version = data.get("cidr", ""), int(data.get("ip_version", 4))
        try:
            subnet = ipaddress.ip_network(cidr)
        except ValueError:
            raise _error(
                400, "HTTPBadRequest", f"Invalid input for cidr. Reason: '{cidr}' is not a valid IP subnet."
            ) from None
        if subnet.version != version:
            raise _error(
                400, "InvalidInput", "Invalid input for operation: ip_version and cidr do not match."
            )
        if subnet.num_addresses < 4:
            raise _error(
                400, "InvalidInput", f"Invalid input for operation: Subnet {cidr} has no room for addresses."
            )
        for other in self.subnets.values():
            if other["network_id"] == network["id"] and subnet.overlaps(ipaddress.ip_network(other["cidr"])):
                raise _error(
                    400,
                    "InvalidInput",
                    f"Invalid input for operation: Requested subnet with cidr: {cidr} for network: "
                    f"{network['id']} overlaps with another subnet.",
                )
        hosts = list(subnet.hosts())
        row = {
            "id": str(uuid.uuid4()),
            "name": data.get("name", ""),
            "description": data.get("description", ""),
            "network_id": network["id"],
            "cidr": str(subnet),
            "ip_version": version,
            "gateway_ip": str(hosts[0]),
            "allocation_pools": [{"start": str(hosts[1]), "end": str(hosts[-1])}],
            "enable_dhcp": data.get("enable_dhcp", True),
            "project_id": "p-portal",
            "tenant_id": "p-portal",
            "created_at": now_iso(),
        }
        self.subnets[row["id"]] = row
        return row

    def port(self, port_id: str) -> dict:
        if port_id not in self.ports:
            raise _error(404, "PortNotFound", f"Port {port_id} could not be found.")
        return self.ports[port_id]

    def _port_create(self, data: dict) -> dict:
        network = self._network(data.get("network_id", ""))
        wanted = data.get("fixed_ips") or [{"subnet_id": s} for s in self.subnet_ids(network["id"])[:1]]
        fixed_ips = []
        for want in wanted:
            subnet = self._subnet(want.get("subnet_id", ""))
            if subnet["network_id"] != network["id"]:
                raise _error(
                    400,
                    "InvalidInput",
                    f"Invalid input for operation: Failed to create port on network {network['id']}, because fixed_ips included invalid subnet {subnet['id']}.",
                )
            fixed_ips.append(
                {
                    "subnet_id": subnet["id"],
                    "ip_address": self._address(network["id"], subnet, want.get("ip_address")),
                }
            )
        port = {
            "id": str(uuid.uuid4()),
            "name": data.get("name", ""),
            "description": data.get("description", ""),
            "network_id": network["id"],
            "device_id": data.get("device_id", ""),
            "device_owner": data.get("device_owner", ""),
            "fixed_ips": fixed_ips,
            "mac_address": "fa:16:3e:" + ":".join(f"{b:02x}" for b in uuid.uuid4().bytes[:3]),
            "status": "DOWN",
            "admin_state_up": True,
            "project_id": "p-portal",
            "tenant_id": "p-portal",
            "tags": [],
            "created_at": now_iso(),
        }
        self.ports[port["id"]] = port
        return port

    def _address(self, network_id: str, subnet: dict, wanted: str | None) -> str:
        taken = {
            ip["ip_address"]
            for p in self.ports.values()
            for ip in p["fixed_ips"]
            if ip["subnet_id"] == subnet["id"]
        }
        if wanted:
            if wanted in taken:
                raise _error(
                    409,
                    "IpAddressAlreadyAllocated",
                    f"IP address {wanted} already allocated in subnet {subnet['id']}",
                )
            return wanted
        pool = subnet["allocation_pools"][0]
        start, end = ipaddress.ip_address(pool["start"]), ipaddress.ip_address(pool["end"])
        address = start
        while address <= end:
            if str(address) not in taken:
                return str(address)
            address += 1
        raise _error(
            409, "IpAddressGenerationFailure", f"No more IP addresses available on network {network_id}."
        )
