"""Firewall rules applied to running and stopped OpenStack servers (Capability.FIREWALL).

A launch puts a server in a security group named after its rules (openstack_lookups), shared by
every server launched with the same rules. To change one server's rules alone, `apply_firewall`
gives it a group of its own, `portal-fw-server-<server id>`, and makes that group's ingress rules
exactly the rules asked for: the extra ones deleted first, then the missing ones added (a rule
added meanwhile is Neutron's 409, and taken as done), so that while a change is under way the
server allows no more than the old and the new rules together. Then the server is put in its group
and taken out of every other (the launch group, "default"): the portal owns a server's inbound
rules. Each step looks before it acts, so a call repeated after a worker died half-way finishes the
job and a call with the same rules changes nothing.

`server_firewall` answers the ingress rules of every group the server is in, for drift checks.

Mixed into `OpenStackBackend` with `OpenStackStorage`, whose `_require` it uses.
"""

from __future__ import annotations

from contextlib import suppress

from openstack import exceptions as sdk_exceptions

from portal.compute.backends.base import Capability
from portal.compute.backends.firewall import normal
from portal.compute.backends.openstack_mapping import TAG_PREFIX

FIELDS = ("ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix")
LAUNCH_GROUP_PREFIX = f"{TAG_PREFIX}fw-"
PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmp", "ipv6-icmp": "icmp", "icmpv6": "icmp"}


def server_group_name(server_id: str) -> str:
    return f"{TAG_PREFIX}fw-server-{server_id}"


def neutron_rules(rules: tuple[dict, ...]) -> set[tuple]:
    """The ingress rules (FIELDS) Neutron holds for the portal's rules; Rejected for a bad one."""
    wanted = set()
    for rule in normal(rules):
        version = 6 if ":" in rule["source"] else 4
        protocol = {"any": None, "icmp": "ipv6-icmp" if version == 6 else "icmp"}.get(
            rule["protocol"], rule["protocol"]
        )
        wanted.add((f"IPv{version}", protocol, rule["port_from"], rule["port_to"], rule["source"]))
    return wanted


def portal_rule(rule) -> dict:
    """One Neutron ingress rule as the portal writes it. A rule that allows another group's
    members (Neutron's "default" group has those) has no source the portal knows: its source
    names the group, which no portal rule matches."""
    protocol = rule.protocol
    protocol = "any" if protocol in (None, "", "any") else PROTOCOL_NAMES.get(str(protocol), str(protocol))
    low, high = rule.port_range_min, rule.port_range_max
    if protocol in ("tcp", "udp") and low is None:
        low, high = 1, 65535
    elif protocol not in ("tcp", "udp"):
        low = high = None
    source = rule.remote_ip_prefix
    if rule.remote_group_id:
        source = f"group:{rule.remote_group_id}"
    elif not source:
        source = "::/0" if rule.ether_type == "IPv6" else "0.0.0.0/0"
    return {"protocol": protocol, "port_from": low, "port_to": high, "source": source}


class OpenStackFirewall:
    def apply_firewall(self, backend_id: str, rules: tuple[dict, ...]) -> None:
        zone, server_id = self._target(backend_id)
        wanted = neutron_rules(rules)  # a rule Neutron cannot take: refused before anything changes
        conn = self._connection(zone)
        with self._cloud("apply firewall", conn, server_id):
            self._require(zone, Capability.FIREWALL)
            self._fetch(conn, server_id)  # a server gone is NotFound, before a group is made for it
            group = self._server_group(conn, server_id)
            present = self._ingress(conn, group.id)
            for key, rule_id in present.items():
                if key not in wanted:
                    conn.network.delete_security_group_rule(rule_id, ignore_missing=True)
            for key in sorted(wanted - present.keys(), key=repr):
                with suppress(sdk_exceptions.ConflictException):  # added meanwhile
                    conn.network.create_security_group_rule(
                        security_group_id=group.id,
                        direction="ingress",
                        **dict(zip(("ether_type", *FIELDS[1:]), key, strict=True)),
                    )
            attached = self._server_groups(conn, server_id)
            for other_id, name in attached:
                if other_id != group.id:  # out of the others first: never more than the rules
                    conn.compute.remove_security_group_from_server(server_id, other_id or name)
            if group.id not in {group_id for group_id, _ in attached}:
                conn.compute.add_security_group_to_server(server_id, group.id)

    def server_firewall(self, backend_id: str) -> tuple[dict, ...] | None:
        zone, server_id = self._target(backend_id)
        conn = self._connection(zone)
        with self._cloud("read firewall", conn, server_id):
            attached = self._server_groups(conn, server_id)
            if not any(name.startswith(LAUNCH_GROUP_PREFIX) for _, name in attached):
                return None
            rules = []
            for group_id, name in attached:
                if not group_id:  # a group Nova names and Neutron does not list: rules unknown
                    rules.append(
                        {"protocol": "any", "port_from": None, "port_to": None, "source": f"group:{name}"}
                    )
                    continue
                rules += [portal_rule(rule) for rule in self._ingress_rules(conn, group_id)]
        return tuple(rules)

    # --- helpers ------------------------------------------------------------------------------

    def _server_group(self, conn, server_id: str):
        name = server_group_name(server_id)
        # Checked by name: a Neutron that ignores the filter answers every group.
        groups = sorted(
            (g for g in conn.network.security_groups(name=name) if g.name == name),
            key=lambda g: (g.created_at or "", g.id),
        )
        if groups:
            return groups[0]  # two racing applies may both have made one: the oldest, always
        return conn.network.create_security_group(
            name=name, description="Inbound rules of one portal server; managed by the portal, do not edit."
        )

    def _ingress_rules(self, conn, group_id: str) -> list:
        return [
            rule
            for rule in conn.network.security_group_rules(security_group_id=group_id, direction="ingress")
            if rule.security_group_id == group_id and rule.direction == "ingress"
        ]

    def _ingress(self, conn, group_id: str) -> dict[tuple, str]:
        """The group's ingress rules by FIELDS, each with its id."""
        return {
            (r.ether_type, r.protocol, r.port_range_min, r.port_range_max, r.remote_ip_prefix): r.id
            for r in self._ingress_rules(conn, group_id)
        }

    def _server_groups(self, conn, server_id: str) -> list[tuple[str, str]]:
        """(id, name) of every security group the server is in, as Nova tells."""
        server = conn.compute.fetch_server_security_groups(server_id)
        return [(g.get("id") or "", g.get("name") or "") for g in server.security_groups or []]
