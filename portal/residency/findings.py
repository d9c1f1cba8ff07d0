"""Where a project's resources live, and which of them its residency policies no longer allow.

Apps that place resources register a provider with `@placed_resources_provider`; the compute app
adds instances and volumes. Nothing here moves or deletes anything: findings are shown and mailed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from portal.catalog.models import Zone
from portal.residency.placement import Decision, PlacementRules, zones_for_decisions


@dataclass(frozen=True)
class PlacedResource:
    kind: str
    name: str
    zone_id: int
    url: str = ""


@dataclass(frozen=True)
class Finding:
    resource: PlacedResource
    zone: Zone
    decision: Decision

    @property
    def compliant(self) -> bool:
        return self.decision.allowed


Provider = Callable[[object], Iterable[PlacedResource]]
_PROVIDERS: list[Provider] = []


def placed_resources_provider(provider: Provider) -> Provider:
    _PROVIDERS.append(provider)
    return provider


@placed_resources_provider
def _default_zone(project) -> Iterable[PlacedResource]:
    if project.default_zone_id:
        yield PlacedResource("Default zone for new resources", project.name, project.default_zone_id)


def residency_findings(project, rules: PlacementRules | None = None) -> list[Finding]:
    """Every placed resource of the project with the placement decision for where it is."""
    rules = rules or PlacementRules.for_project(project)
    resources = [r for provider in _PROVIDERS for r in provider(project)]
    zones = zones_for_decisions().in_bulk({r.zone_id for r in resources})
    return [Finding(r, zones[r.zone_id], rules.decide(zones[r.zone_id])) for r in resources]


def noncompliant(project, rules: PlacementRules | None = None) -> list[Finding]:
    return [f for f in residency_findings(project, rules) if not f.compliant]
