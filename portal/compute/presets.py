"""Ready-made firewall rule sets offered in the launch wizard and on the firewall pages."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from portal.compute.models import FirewallRule, FirewallRuleSet, Protocol


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    rules: tuple[tuple[str, int | None, int | None, str, str], ...]  # protocol, from, to, source, description


def presets_for(client_ip: str | None) -> dict[str, Preset]:
    mine = _cidr(client_ip)
    presets = {
        "web": Preset(
            "web",
            "HTTP/HTTPS from anywhere, SSH from anywhere",
            (
                (Protocol.TCP, 80, 80, "0.0.0.0/0", "HTTP"),
                (Protocol.TCP, 443, 443, "0.0.0.0/0", "HTTPS"),
                (Protocol.TCP, 22, 22, "0.0.0.0/0", "SSH"),
            ),
        ),
    }
    if mine:
        presets["ssh-my-ip"] = Preset(
            "ssh-my-ip",
            f"SSH from my IP only ({mine})",
            ((Protocol.TCP, 22, 22, mine, "SSH from my address"),),
        )
    return presets


def _cidr(ip: str | None) -> str | None:
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return None
    return f"{address}/{32 if address.version == 4 else 128}"


def rule_set_from_preset(project, preset: Preset, user) -> FirewallRuleSet:
    """The project's rule set for this preset: reused while its rules are still the preset's,
    otherwise (someone edited it) a fresh one with a numbered name."""
    base = {"web": "web-and-ssh", "ssh-my-ip": f"ssh-from-{preset.rules[0][3].split('/')[0]}"}[preset.key]
    wanted = sorted((p, a, b, src) for p, a, b, src, _d in preset.rules)
    name, n = base, 2
    while (existing := FirewallRuleSet.objects.filter(project=project, name=name).first()) is not None:
        if sorted(existing.rules.values_list("protocol", "port_from", "port_to", "source")) == wanted:
            return existing
        name, n = f"{base}-{n}", n + 1
    rule_set = FirewallRuleSet.objects.create(project=project, name=name, created_by=user)
    FirewallRule.objects.bulk_create(
        FirewallRule(rule_set=rule_set, protocol=p, port_from=a, port_to=b, source=src, description=d)
        for p, a, b, src, d in preset.rules
    )
    return rule_set
