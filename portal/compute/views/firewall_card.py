"""A server's firewall card on its page: what its cloud enforces (applied / applying / failed) and,
for those who may change it, the project's rule sets to choose from (views/instance_firewall.py
takes the form)."""

from __future__ import annotations

from portal.compute.models import FirewallRuleSet, Instance
from portal.compute.services.instance_firewall import SETTABLE
from portal.tenancy.access import Access, Perm

NONE_LABEL = "None: all inbound traffic allowed"


def firewall_context(access: Access, instance: Instance, refusal: str) -> dict:
    """What the server page's firewall card shows; `refusal` is why the zone has no firewall rules
    (firewall_refusal), or ""."""
    settable = access.can(Perm.RESOURCE_OPERATE) and instance.status in SETTABLE and not refusal
    return {
        "firewall_absent": refusal,
        "firewall_settable": settable,
        "firewall_choices": list(FirewallRuleSet.objects.filter(project=access.project).only("pk", "name"))
        if settable
        else [],
        "firewall_none_label": NONE_LABEL,
    }
