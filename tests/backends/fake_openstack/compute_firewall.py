"""Nova's side of security groups: `addSecurityGroup` / `removeSecurityGroup` server actions and
`GET /servers/{id}/os-security-groups`, answering as Nova does with Neutron behind it (a group is
named by its name or id; one already on the server is a 400, one not on it too; an unknown group a
404; a name several groups share a 409). A server holds its groups by name, as Nova shows them."""

from __future__ import annotations

from tests.backends.fake_openstack.nova_server import Server, nova_error


class NovaSecurityGroups:
    def __init__(self, compute) -> None:
        self.compute = compute

    @property
    def groups(self) -> dict[str, dict]:
        return self.compute.cloud.network.security_groups

    def _group(self, wanted: str) -> dict:
        by_id = self.groups.get(wanted)
        if by_id is not None:
            return by_id
        named = [g for g in self.groups.values() if g["name"] == wanted]
        if not named:
            raise nova_error(404, f"Security group {wanted} not found.")
        if len(named) > 1:
            raise nova_error(
                409,
                f"Multiple security_group matches found for name '{wanted}', use an ID to be more specific.",
            )
        return named[0]

    def route(self, method: str, route: list, body: dict | None, microversion: str):
        """Answer `os-security-groups` of a server, or None for a route that is not it."""
        match (method, route):
            case ("GET", ["servers", server_id, "os-security-groups"]):
                server = self.compute.server(server_id)
                views = []
                for name in server.security_groups:
                    found = [g for g in self.groups.values() if g["name"] == name]
                    for group in found or [{"id": "", "name": name, "description": ""}]:
                        views.append(
                            {
                                "id": group["id"],
                                "name": group["name"],
                                "description": group.get("description", ""),
                                "tenant_id": "p-portal",
                                "rules": [],
                            }
                        )
                return 200, {"security_groups": views}, {}
        return None

    def action(self, server: Server, action: str, args: dict | None):
        wanted = str((args or {}).get("name") or "")
        if not wanted:
            raise nova_error(400, "Missing parameter name")
        if server.vm_state not in ("active", "stopped", "paused", "suspended"):
            raise nova_error(
                409, f"Cannot '{action}' instance {server.id} while it is in vm_state {server.vm_state}"
            )
        group = self._group(wanted)
        if action == "addSecurityGroup":
            if group["name"] in server.security_groups:
                raise nova_error(
                    400, f"Security group {group['id']} is already associated with the instance {server.id}"
                )
            server.security_groups.append(group["name"])
        else:
            if group["name"] not in server.security_groups:
                raise nova_error(
                    400, f"Security group {group['id']} not associated with the instance {server.id}"
                )
            server.security_groups.remove(group["name"])
        return 202, None, {}
