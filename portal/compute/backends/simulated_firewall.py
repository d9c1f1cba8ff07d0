"""Firewall rules in the simulated cloud: a server's inbound rules are recorded on its row
(`SimulatedServer.firewall_rules`, in firewall.py's normal form) and checked as a cloud checks
them: a rule it cannot take is refused and nothing changes. A launch records the rules it was
given (none: all inbound traffic, as a launch without a firewall has); `set_firewall_behind_the_portals_back`
is what an operator's change in the cloud's own console would be, for drift tests and demos."""

from __future__ import annotations

from django.db import transaction

from portal.compute.backends.base import Capability, ServerSpec
from portal.compute.backends.firewall import ALL_INBOUND, normal


def launch_rules(spec: ServerSpec) -> list[dict]:
    return normal(spec.firewall_rules or ALL_INBOUND)


class SimulatedFirewall:
    def apply_firewall(self, backend_id: str, rules: tuple[dict, ...]) -> None:
        self._call()
        wanted = normal(rules)  # Rejected before anything changes
        with transaction.atomic():
            row = self._row(backend_id, lock=True)
            self._require(Capability.FIREWALL, row.zone_code)
            if row.firewall_rules != wanted:
                row.firewall_rules = wanted
                row.save(update_fields=["firewall_rules"])

    def server_firewall(self, backend_id: str) -> tuple[dict, ...] | None:
        self._call()
        row = self._row(backend_id)
        return None if row.firewall_rules is None else tuple(row.firewall_rules)

    def set_firewall_behind_the_portals_back(self, backend_id: str, rules: tuple[dict, ...]) -> None:
        row = self._row(backend_id)
        row.firewall_rules = list(rules)
        row.save(update_fields=["firewall_rules"])
