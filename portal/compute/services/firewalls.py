"""Writes for a project's firewall rule sets and their rules: each takes `access`, checks the role,
validates, changes rows under the project lock, records an audit event, and raises ComputeRefused.

Firewall rules reach a server when it is launched (the create operation passes them to the
backend), and every change of a rule set's rules reaches the servers that use it: an apply
operation each (services/instance_firewall.py), enqueued with the change.
"""

from __future__ import annotations

import ipaddress

from django.db import transaction
from django.http import HttpRequest

from portal.audit.models import AuditAction
from portal.compute.models import (
    FirewallRule,
    FirewallRuleSet,
    Instance,
    Protocol,
)
from portal.compute.presets import presets_for
from portal.compute.services.common import ComputeRefused, Problem, audit, label, lock_project
from portal.compute.services.instance_firewall import rule_set_applies
from portal.tenancy.access import Access, Perm

PORT_MIN, PORT_MAX = 1, 65535
DESCRIPTION_MAX_LENGTH = 120


def preset_rule_set_name(preset_key: str, client_ip: str | None) -> str:
    """The name a preset's rule set gets; the launch wizard's presets use the same names."""
    preset = presets_for(client_ip)[preset_key]
    if preset_key == "ssh-my-ip":
        return f"ssh-from-{preset.rules[0][3].split('/')[0]}"
    return "web-and-ssh"


def firewall_create(
    *,
    access: Access,
    name: str,
    preset: str | None = None,
    client_ip: str | None = None,
    request: HttpRequest | None = None,
) -> FirewallRuleSet:
    """A new rule set, empty (drops all inbound traffic) or filled from a preset.

    Without a name, a preset's rule set is named after it (as in the launch wizard).
    """
    access.require(Perm.RESOURCE_CREATE)
    presets = presets_for(client_ip)
    chosen = None
    if preset:
        chosen = presets.get(preset)
        if chosen is None:
            raise ComputeRefused(
                "That preset is not available"
                + (" (your IP address is not known to the portal)." if preset == "ssh-my-ip" else "."),
                "preset",
            )
        if not (name or "").strip():
            name = preset_rule_set_name(preset, client_ip)
    name = label(name, what="firewall", max_length=80)
    with transaction.atomic():
        project = lock_project(access)
        if FirewallRuleSet.objects.filter(project=project, name=name).exists():
            raise ComputeRefused(f"The project already has a firewall named “{name}”.", "name", 409)
        rule_set = FirewallRuleSet.objects.create(
            project=project, name=name, created_by=access.membership.user
        )
        rules = []
        if chosen is not None:
            rules = FirewallRule.objects.bulk_create(
                FirewallRule(rule_set=rule_set, protocol=p, port_from=a, port_to=b, source=src, description=d)
                for p, a, b, src, d in chosen.rules
            )
        audit(
            access,
            AuditAction.FIREWALL_CREATED,
            rule_set,
            {"rules": [None, "; ".join(str(r) for r in rules) or "none (drops all inbound traffic)"]},
            request,
        )
    return rule_set


def normalise_source(source: str) -> str:
    """A CIDR as the backend wants it: 203.0.113.7 → 203.0.113.7/32, 10.1.2.3/8 → 10.0.0.0/8."""
    text = (source or "").strip()
    if not text:
        raise ComputeRefused(
            "Enter where traffic may come from, e.g. 203.0.113.7/32, or 0.0.0.0/0 for anywhere.", "source"
        )
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ComputeRefused(
            f"“{text[:64]}” is not an IPv4 or IPv6 address or network; write it like 203.0.113.0/24 or 2001:db8::/32.",
            "source",
        ) from None


def validate_ports(
    protocol: str, port_from: int | None, port_to: int | None
) -> tuple[int | None, int | None]:
    if protocol == Protocol.ICMP:
        if port_from is not None or port_to is not None:
            raise ComputeRefused("ICMP has no ports: leave both port fields empty.", "port_from")
        return None, None
    if port_from is None:
        raise ComputeRefused(f"{Protocol(protocol).label} rules need a port, e.g. 22 for SSH.", "port_from")
    if port_to is None:
        port_to = port_from
    for field, port in (("port_from", port_from), ("port_to", port_to)):
        if not PORT_MIN <= port <= PORT_MAX:
            raise ComputeRefused(f"Ports are numbers from {PORT_MIN} to {PORT_MAX}.", field)
    if port_from > port_to:
        raise ComputeRefused(
            f"The range {port_from} to {port_to} runs backwards; put the lower port first.", "port_to"
        )
    return port_from, port_to


def rule_problems(
    protocol: str, port_from: int | None, port_to: int | None, source: str, description: str
) -> list[Problem]:
    """Every problem of a rule at once, not one per attempt."""
    problems = []
    if protocol not in Protocol.values:
        problems.append(Problem("protocol", "Choose TCP, UDP or ICMP."))
    else:
        try:
            validate_ports(protocol, port_from, port_to)
        except ComputeRefused as refused:
            problems += refused.problems
    try:
        normalise_source(source)
    except ComputeRefused as refused:
        problems += refused.problems
    if len((description or "").strip()) > DESCRIPTION_MAX_LENGTH:
        problems.append(
            Problem("description", f"Keep the description to {DESCRIPTION_MAX_LENGTH} characters.")
        )
    return problems


def _locked_rule_set(access: Access, rule_set: FirewallRuleSet) -> FirewallRuleSet:
    locked = (
        FirewallRuleSet.objects.select_for_update().filter(project=access.project, pk=rule_set.pk).first()
    )
    if locked is None:
        raise ComputeRefused(f"The firewall “{rule_set.name}” has been deleted.", status=409)
    return locked


def firewall_rule_add(
    *,
    access: Access,
    rule_set: FirewallRuleSet,
    protocol: str,
    port_from: int | None,
    port_to: int | None,
    source: str,
    description: str = "",
    request: HttpRequest | None = None,
) -> FirewallRule:
    """Allow one kind of inbound traffic. A rule the set already has (once normalised: 22-22 is 22,
    203.0.113.4 is 203.0.113.4/32) is refused with a 409 and changes nothing: answering "added"
    while adding nothing would hide that the set, and its description, are not what was typed."""
    access.require(Perm.RESOURCE_OPERATE)
    problems = rule_problems(protocol, port_from, port_to, source, description)
    if problems:
        raise ComputeRefused.of(problems)
    port_from, port_to = validate_ports(protocol, port_from, port_to)
    source = normalise_source(source)
    description = (description or "").strip()
    with transaction.atomic():
        rule_set = _locked_rule_set(access, rule_set)
        existing = rule_set.rules.filter(
            protocol=protocol, port_from=port_from, port_to=port_to, source=source
        ).first()
        if existing is not None:
            raise ComputeRefused(f"This rule set already has that rule ({existing}).", status=409)
        rule = FirewallRule.objects.create(
            rule_set=rule_set,
            protocol=protocol,
            port_from=port_from,
            port_to=port_to,
            source=source,
            description=description,
        )
        audit(access, AuditAction.FIREWALL_UPDATED, rule_set, {"rule added": [None, str(rule)]}, request)
        rule_set_applies(rule_set, requested_by=access.membership.user)
    return rule


def firewall_rule_delete(*, access: Access, rule: FirewallRule, request: HttpRequest | None = None) -> None:
    access.require(Perm.RESOURCE_OPERATE)
    with transaction.atomic():
        rule_set = _locked_rule_set(access, rule.rule_set)
        rule = rule_set.rules.filter(pk=rule.pk).first()
        if rule is None:
            return
        audit(access, AuditAction.FIREWALL_UPDATED, rule_set, {"rule removed": [str(rule), None]}, request)
        rule.delete()
        rule_set_applies(rule_set, requested_by=access.membership.user)


def servers_using(rule_set: FirewallRuleSet) -> list[Instance]:
    return list(rule_set.instances.visible().order_by("name"))


def firewall_delete(*, access: Access, rule_set: FirewallRuleSet, request: HttpRequest | None = None) -> None:
    """Delete a rule set no server uses (terminated servers do not count)."""
    access.require(Perm.RESOURCE_OPERATE)
    with transaction.atomic():
        lock_project(access)  # launches take it too: no server can pick this set up meanwhile
        rule_set = FirewallRuleSet.objects.filter(project=access.project, pk=rule_set.pk).first()
        if rule_set is None:
            return
        using = servers_using(rule_set)
        if using:
            names = ", ".join(i.name for i in using[:5]) + (
                f" and {len(using) - 5} more" if len(using) > 5 else ""
            )
            raise ComputeRefused(
                f"“{rule_set.name}” is still used by {names}. "
                "It can be deleted once no server uses it (terminated servers do not count).",
                status=409,
            )
        audit(
            access, AuditAction.FIREWALL_DELETED, rule_set, {"rules": [rule_set.rules.count(), None]}, request
        )
        rule_set.delete()
