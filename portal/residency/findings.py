"""Where a project's resources live, and which of them its residency policies no longer allow.

Apps that place resources register a provider with `@placed_resources_provider`: it takes a list
of projects and yields (project id, PlacedResource) for all of them in a constant number of
queries. The compute app adds instances and volumes. Nothing here moves or deletes anything:
findings are shown and mailed.
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


Provider = Callable[[list], Iterable[tuple[int, PlacedResource]]]
_PROVIDERS: list[Provider] = []


def placed_resources_provider(provider: Provider) -> Provider:
    _PROVIDERS.append(provider)
    return provider


@placed_resources_provider
def _default_zones(projects) -> Iterable[tuple[int, PlacedResource]]:
    for project in projects:
        if project.default_zone_id:
            yield project.pk, PlacedResource("Default zone (setting)", project.name, project.default_zone_id)


def findings_by_project(organization, projects) -> dict[int, list[Finding]]:
    """Every placed resource of each project with the placement decision for where it is."""
    projects = list(projects)
    rules = PlacementRules.for_projects(organization, projects)
    placed = [item for provider in _PROVIDERS for item in provider(projects)]
    zones = zones_for_decisions().in_bulk({resource.zone_id for _, resource in placed})
    found: dict[int, list[Finding]] = {project.pk: [] for project in projects}
    for project_id, resource in placed:
        zone = zones[resource.zone_id]
        found[project_id].append(Finding(resource, zone, rules[project_id].decide(zone)))
    return found


def residency_findings(project) -> list[Finding]:
    return findings_by_project(project.organization, [project])[project.pk]


def noncompliant(project) -> list[Finding]:
    return [f for f in residency_findings(project) if not f.compliant]
