"""Nova's `os-interface`: a Neutron port attached to a server (hot plug on a running server, or a
stopped one), listed, detached. As Nova does: the port must exist (404), be unbound (409 "Port …
is still in use"), the server ACTIVE or SHUTOFF with no task (409 "Cannot 'attach_interface'");
an attached port is bound to the server (`device_id`, owner `compute:nova`). A server deleted
with ports the project made unbinds them (Nova leaves ports it did not create); a port deleted in
Neutron is gone from the server's interfaces."""

from __future__ import annotations

from tests.backends.fake_openstack.nova_server import Server, nova_error

ATTACHABLE = ("active", "stopped")


class NovaInterfaces:
    def __init__(self, compute) -> None:
        self.compute = compute

    @property
    def ports(self):
        return self.compute.cloud.network.project_networks

    def route(self, method: str, route: list, body: dict | None, microversion: str):
        match (method, route):
            case ("GET", ["servers", server_id, "os-interface"]):
                server = self.compute.server(server_id)
                return 200, {"interfaceAttachments": [self._view(p) for p in self._of(server)]}, {}
            case ("POST", ["servers", server_id, "os-interface"]):
                return self._attach(
                    self.compute.server(server_id), (body or {}).get("interfaceAttachment") or {}
                )
            case ("DELETE", ["servers", server_id, "os-interface", port_id]):
                server = self.compute.server(server_id)
                port = next((p for p in self._of(server) if p["id"] == port_id), None)
                if port is None:
                    raise nova_error(404, f"Port {port_id} is not attached")
                port["device_id"], port["device_owner"], port["status"] = "", "", "DOWN"
                return 202, None, {}
        return None

    def _of(self, server: Server) -> list[dict]:
        return [p for p in self.ports.ports.values() if p["device_id"] == server.id]

    def _attach(self, server: Server, data: dict):
        port_id = data.get("port_id")
        if not port_id:
            raise nova_error(400, "Only port_id attachments are modelled by this fake.")
        if server.vm_state not in ATTACHABLE or server.task_state:
            raise nova_error(
                409,
                f"Cannot 'attach_interface' instance {server.id} while it is in vm_state {server.vm_state}",
            )
        port = self.ports.ports.get(port_id)
        if port is None:
            raise nova_error(404, f"Port {port_id} could not be found.")
        if port["device_id"]:
            raise nova_error(409, f"Port {port_id} is still in use.")
        port["device_id"], port["device_owner"], port["status"] = server.id, "compute:nova", "ACTIVE"
        return 200, {"interfaceAttachment": self._view(port)}, {}

    def _view(self, port: dict) -> dict:
        return {
            "port_id": port["id"],
            "net_id": port["network_id"],
            "mac_addr": port["mac_address"],
            "port_state": port["status"],
            "fixed_ips": port["fixed_ips"],
        }

    def server_deleted(self, server: Server) -> None:
        for port in self._of(server):
            port["device_id"], port["device_owner"], port["status"] = "", "", "DOWN"

    def port_deleted(self, port: dict) -> None:
        """Neutron told Nova (network-vif-deleted): nothing more to do in this fake."""
