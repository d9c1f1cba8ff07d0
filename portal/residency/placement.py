"""The one placement decision: may this project put a resource in this zone, and if not, why?

Every service that places or moves a resource calls `placement_decision` (or, for many zones at
once, `PlacementRules.for_project(...).decide(zone)`). The reasons are written for the customer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q

from portal.catalog.models import Zone
from portal.residency.models import ResidencyPolicy


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reasons: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def reason(self) -> str:
        return " ".join(self.reasons)


class PlacementDenied(Exception):
    """A resource may not go where it was asked to; `decision.reason` says why."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


@dataclass(frozen=True)
class PolicyRule:
    """One policy's constraints as sets of ids and display names (loaded once, used per zone)."""

    label: str
    jurisdictions: dict[int, str] = field(default_factory=dict)
    regions: dict[int, str] = field(default_factory=dict)
    certifications: dict[int, str] = field(default_factory=dict)

    @classmethod
    def from_policy(cls, policy: ResidencyPolicy) -> PolicyRule:
        return cls(
            label=policy.label,
            jurisdictions={j.pk: j.name for j in policy.jurisdictions.all()},
            regions={r.pk: r.name for r in policy.regions.all()},
            certifications={c.pk: c.name for c in policy.certifications.all()},
        )

    @property
    def restricts(self) -> bool:
        return bool(self.jurisdictions or self.regions or self.certifications)

    def violations(self, zone: Zone) -> list[str]:
        region = zone.region
        found = []
        prefix = f"Blocked by {self.label}: "
        if self.jurisdictions and region.jurisdiction_id not in self.jurisdictions:
            allowed = ", ".join(sorted(self.jurisdictions.values()))
            found.append(
                f"{prefix}{region.name} is in {region.jurisdiction.name} jurisdiction (allowed: {allowed})."
            )
        elif self.regions and region.pk not in self.regions:
            allowed = ", ".join(sorted(self.regions.values()))
            found.append(f"{prefix}{region.name} is not one of the allowed regions ({allowed}).")
        if self.certifications:
            held = {c.pk for c in region.certifications.all()}
            missing = sorted(name for pk, name in self.certifications.items() if pk not in held)
            if missing:
                found.append(f"{prefix}{region.name} lacks the required certification {', '.join(missing)}.")
        return found


@dataclass(frozen=True)
class PlacementRules:
    rules: tuple[PolicyRule, ...]

    @classmethod
    def for_project(cls, project) -> PlacementRules:
        policies = (
            ResidencyPolicy.objects.filter(organization_id=project.organization_id)
            .filter(Q(project__isnull=True) | Q(project=project))
            .prefetch_related("jurisdictions", "regions", "certifications")
        )
        # Organization first: its reasons read first when both block.
        ordered = sorted(policies, key=lambda p: p.project_id is not None)
        return cls(tuple(PolicyRule.from_policy(p) for p in ordered))

    @classmethod
    def for_projects(cls, organization, projects) -> dict[int, PlacementRules]:
        """Rules for many projects of one organization, from one query (plus its prefetches)."""
        policies = list(
            ResidencyPolicy.objects.filter(organization=organization).prefetch_related(
                "jurisdictions", "regions", "certifications"
            )
        )
        org_rules = tuple(PolicyRule.from_policy(p) for p in policies if p.project_id is None)
        by_project = {p.project_id: PolicyRule.from_policy(p) for p in policies if p.project_id is not None}
        return {
            project.pk: cls(org_rules + ((by_project[project.pk],) if project.pk in by_project else ()))
            for project in projects
        }

    @classmethod
    def for_organization(cls, organization) -> PlacementRules:
        policy = (
            ResidencyPolicy.objects.filter(organization=organization, project__isnull=True)
            .prefetch_related("jurisdictions", "regions", "certifications")
            .first()
        )
        return cls((PolicyRule.from_policy(policy),) if policy else ())

    def decide(self, zone: Zone) -> Decision:
        reasons = [reason for rule in self.rules for reason in rule.violations(zone)]
        return Decision(allowed=not reasons, reasons=tuple(reasons))


def zones_for_decisions():
    """Zones with what `decide` reads, in two queries whatever their number."""
    return Zone.objects.select_related("region__jurisdiction").prefetch_related("region__certifications")


def placement_decision(project, zone: Zone, *, lock: bool = False) -> Decision:
    """May `project` place a resource in `zone`?

    With `lock=True` (inside a transaction) the project's policies are locked first, so a policy
    change waits until this placement has committed and then sees it (and reports it if needed).
    """
    if lock:
        list(
            ResidencyPolicy.objects.select_for_update()
            .filter(organization_id=project.organization_id)
            .filter(Q(project__isnull=True) | Q(project=project))
            .values_list("pk", flat=True)
        )
    zone = zones_for_decisions().get(pk=zone.pk)
    return PlacementRules.for_project(project).decide(zone)
