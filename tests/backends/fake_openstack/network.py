"""Neutron v2.0: networks (the project's own, with subnets and ports: network_ports.py), its
extensions, and security groups with their rules (Neutron's default
egress rules included; a duplicate rule answers 409 as Neutron does, a rule Neutron would not
take a 400: an unknown protocol, a port range running backwards or past 65535, a prefix that is
not a network or of the other family than its ethertype). Without the `security-group`
extension (`extensions.discard("security-group")`), as in a cloud whose Neutron runs no security
group driver, the security group routes are not there: webob's 404, as for any unknown route."""

from __future__ import annotations

import ipaddress
import uuid

from tests.backends.fake_openstack.network_ports import NeutronPorts
from tests.backends.fake_openstack.server import HttpError, Service, now_iso


def neutron_error(status: int, kind: str, message: str) -> HttpError:
    return HttpError(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


class Network(Service):
    name = "network"
    catalog_type = "network"
    catalog_name = "neutron"

    def __init__(self, cloud) -> None:
        super().__init__(cloud)
        public = str(uuid.UUID(int=100))
        self.networks = {public: {"id": public, "name": "public", "shared": True, "router:external": True}}
        self.project_networks = NeutronPorts(self)  # networks of the project, subnets, ports
        self.security_groups: dict[str, dict] = {}
        self.ignores_filters = False  # lists answer everything, whatever the query asks
        # A few of the aliases a stock ML2/OVN Neutron lists at GET /v2.0/extensions.
        self.extensions = {"external-net", "router", "quotas", "security-group", "standard-attr-tag"}

    def handle(self, method: str, rest: list, query: dict, headers, body: dict | None):
        if method == "GET" and not rest:
            version = {
                "id": "v2.0",
                "status": "CURRENT",
                "links": [{"rel": "self", "href": f"{self.cloud.url}/network/v2.0/"}],
            }
            return 200, {"versions": [version]}, {}
        if rest[0] != "v2.0":
            return self.not_found(headers)
        if (
            rest[1:2] in (["security-groups"], ["security-group-rules"])
            and "security-group" not in self.extensions
        ):
            return self.not_found(headers)
        match (method, rest[1:]):
            case ("GET", []):
                return 200, {"resources": [{"name": "network", "collection": "networks", "links": []}]}, {}
            case ("GET", ["extensions"]):
                return 200, {"extensions": [_extension(alias) for alias in sorted(self.extensions)]}, {}
            case ("GET", ["networks"]):
                networks = [self._network_view(n) for n in self.networks.values()]
                return 200, {"networks": self._filtered(networks, query)}, {}
            case ("GET", ["networks", network_id]):
                if network_id not in self.networks:
                    raise neutron_error(404, "NetworkNotFound", f"Network {network_id} could not be found.")
                return 200, {"network": self._network_view(self.networks[network_id])}, {}
            case ("GET", ["security-groups"]):
                groups = list(self.security_groups.values())
                return 200, {"security_groups": self._filtered(groups, query)}, {}
            case ("GET", ["security-groups", group_id]):
                if group_id not in self.security_groups:
                    raise neutron_error(
                        404, "SecurityGroupNotFound", f"Security group {group_id} does not exist"
                    )
                return 200, {"security_group": self.security_groups[group_id]}, {}
            case ("POST", ["security-groups"]):
                data = body["security_group"]
                group_id = str(uuid.uuid4())
                group = {
                    "id": group_id,
                    "name": data.get("name", ""),
                    "description": data.get("description", ""),
                    "project_id": "p-portal",
                    "tenant_id": "p-portal",
                    "stateful": True,
                    "tags": [],
                    "created_at": now_iso(),
                    "revision_number": 1,
                    "security_group_rules": [],
                }
                self.security_groups[group_id] = group
                for ethertype in ("IPv4", "IPv6"):  # Neutron's default egress rules
                    self._rule_create(
                        {"security_group_id": group_id, "direction": "egress", "ethertype": ethertype}
                    )
                return 201, {"security_group": group}, {}
            case ("GET", ["security-group-rules"]):
                rules = [r for g in self.security_groups.values() for r in g["security_group_rules"]]
                return 200, {"security_group_rules": self._filtered(rules, query)}, {}
            case ("POST", ["security-group-rules"]):
                return 201, {"security_group_rule": self._rule_create(body["security_group_rule"])}, {}
            case ("DELETE", ["security-group-rules", rule_id]):
                for group in self.security_groups.values():
                    kept = [r for r in group["security_group_rules"] if r["id"] != rule_id]
                    if len(kept) != len(group["security_group_rules"]):
                        group["security_group_rules"] = kept
                        return 204, None, {}
                raise neutron_error(
                    404, "SecurityGroupRuleNotFound", f"Security group rule {rule_id} does not exist"
                )
        answer = self.project_networks.route(method, rest[1:], query, body)
        return answer if answer is not None else self.not_found(headers)

    def _filtered(self, items: list[dict], query: dict) -> list[dict]:
        """Neutron's list filters: every query parameter that names a field must match."""
        for name, values in query.items() if not self.ignores_filters else ():
            if items and name in items[0]:
                items = [item for item in items if str(item[name]) in values]
        return items

    def _network_view(self, network: dict) -> dict:
        return {
            "status": "ACTIVE",
            "admin_state_up": True,
            "description": "",
            "project_id": "p-admin",
            "tenant_id": "p-admin",
            "mtu": 1500,
            "tags": [],
            **network,
            "subnets": self.project_networks.subnet_ids(network["id"]),
        }

    def _rule_create(self, data: dict) -> dict:
        group = self.security_groups.get(data.get("security_group_id", ""))
        if group is None:
            raise neutron_error(404, "SecurityGroupNotFound", "Security group does not exist")
        fields = (
            "direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
        )
        rule = {name: data.get(name) for name in fields}
        rule["ethertype"] = rule["ethertype"] or "IPv4"
        _check_rule(rule)
        for existing in group["security_group_rules"]:
            if all(existing[name] == rule[name] for name in fields):
                raise neutron_error(
                    409,
                    "SecurityGroupRuleExists",
                    f"Security group rule already exists. Rule id is {existing['id']}.",
                )
        rule.update(
            id=str(uuid.uuid4()),
            security_group_id=group["id"],
            remote_group_id=None,
            description=data.get("description", ""),
            project_id="p-portal",
            tenant_id="p-portal",
        )
        group["security_group_rules"].append(rule)
        return rule


PROTOCOLS = {None, "tcp", "udp", "icmp", "ipv6-icmp"}


def _check_rule(rule: dict) -> None:
    """What Neutron's API refuses with a 400 (neutron/extensions/securitygroup.py and the db checks)."""
    if rule["protocol"] not in PROTOCOLS:
        raise neutron_error(
            400,
            "SecurityGroupRuleInvalidProtocol",
            f"Security group rule protocol {rule['protocol']} not supported.",
        )
    low, high = rule["port_range_min"], rule["port_range_max"]
    for port in (low, high):
        if port is not None and not 0 <= int(port) <= 65535:
            raise neutron_error(400, "SecurityGroupInvalidPortValue", f"Invalid value for port {port}.")
    if rule["protocol"] in ("tcp", "udp") and low is not None and (high is None or int(low) > int(high)):
        raise neutron_error(
            400,
            "SecurityGroupInvalidPortRange",
            "For TCP/UDP protocols, port_range_min must be <= port_range_max",
        )
    prefix = rule["remote_ip_prefix"]
    if prefix is not None:
        try:
            network = ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            raise neutron_error(400, "HTTPBadRequest", f"'{prefix}' is not a valid IP subnet.") from None
        if f"IPv{network.version}" != rule["ethertype"]:
            raise neutron_error(
                400,
                "SecurityGroupRuleParameterConflict",
                f"Conflicting value ethertype {rule['ethertype']} for CIDR {prefix}",
            )


def _extension(alias: str) -> dict:
    return {
        "alias": alias,
        "name": alias.replace("-", " ").title(),
        "description": f"The {alias} extension.",
        "updated": "2013-02-03T10:00:00-00:00",
        "links": [],
    }
