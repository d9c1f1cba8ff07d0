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
    """The project's rule set for this preset, created the first time it is used."""
    name = {"web": "web-and-ssh", "ssh-my-ip": f"ssh-from-{preset.rules[0][3].split('/')[0]}"}[preset.key]
    rule_set, created = FirewallRuleSet.objects.get_or_create(
        project=project, name=name, defaults={"created_by": user}
    )
    if created:
        FirewallRule.objects.bulk_create(
            FirewallRule(rule_set=rule_set, protocol=p, port_from=a, port_to=b, source=src, description=d)
            for p, a, b, src, d in preset.rules
        )
    return rule_set
