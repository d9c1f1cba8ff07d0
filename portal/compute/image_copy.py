"""What decides whether a project's image (a server snapshot or a backup) can be copied into a
zone of another region, and where it can go: one answer for the service, the pages and the API.

A copy is a placement: the target zone is checked against the project's residency policy exactly
as a launch is (`PlacementRules.decide`), and a forbidden region is named with the policy's reason.
Beyond the policy, a copy goes only between zones of one cloud (the same backend) whose
capabilities both hold IMAGE_COPY, into another region, of an available image."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from portal.catalog.models import Zone, ZoneStatus
from portal.compute.backends import Capability
from portal.compute.models import Snapshot, SnapshotStatus
from portal.compute.problems import Problem
from portal.compute.snapshot_rules import SNAPSHOT_NAME_MAX_LENGTH, capability_refusal, snapshot_price_monthly
from portal.residency.placement import PlacementRules, zones_for_decisions


@dataclass(frozen=True)
class CopyTarget:
    """A zone of another region, and why the image can't be copied there ("" when it can)."""

    zone: Zone
    refusal: str = ""
    by_policy: bool = False  # the refusal is the residency policy's

    @property
    def allowed(self) -> bool:
        return not self.refusal


def copy_name(snapshot: Snapshot, zone: Zone) -> str:
    suffix = f"-{zone.code}"
    return snapshot.name[: SNAPSHOT_NAME_MAX_LENGTH - len(suffix)] + suffix


def copy_price_monthly(snapshot: Snapshot) -> Decimal:
    """What keeping the copy costs per month: as much as the image it copies (same size)."""
    return snapshot_price_monthly(snapshot.size_gib)


def source_problems(snapshot: Snapshot) -> list[Problem]:
    """Why `snapshot` can't be copied anywhere now (every reason), [] when it can."""
    problems = []
    if not snapshot.is_bootable:
        problems.append(
            Problem(None, "Only images (server snapshots and backups) are copied to other regions.", 409)
        )
    if snapshot.status != SnapshotStatus.AVAILABLE:
        problems.append(Problem(None, f"{snapshot.name} is not available yet: copy it once it is.", 409))
    if refusal := capability_refusal(snapshot.zone, Capability.IMAGE_COPY):
        problems.append(Problem(None, refusal, 409))
    return problems


def target_problems(snapshot: Snapshot, zone: Zone) -> list[Problem]:
    """Why `zone` can't take a copy of `snapshot`, the residency policy apart."""
    if zone.region_id == snapshot.zone.region_id:
        return [
            Problem("zone", f"{snapshot.name} is already in {zone.region.name}: choose another region.", 400)
        ]
    problems = []
    if zone.backend != snapshot.zone.backend:
        problems.append(
            Problem(
                "zone",
                f"{zone.code} is run by another cloud than {snapshot.zone.code}: an image is copied only "
                "between regions of one cloud.",
                409,
            )
        )
    elif refusal := capability_refusal(zone, Capability.IMAGE_COPY):
        problems.append(Problem("zone", refusal, 409))
    if zone.status == ZoneStatus.MAINTENANCE:
        problems.append(Problem("zone", f"{zone.code} is in maintenance: choose another zone.", 409))
    return problems


def copy_targets(snapshot: Snapshot, project) -> list[CopyTarget]:
    """Every zone outside the snapshot's region, with why it can't take a copy (the policy's reason
    first). A zone of another cloud is left out: it is no choice to show."""
    rules = PlacementRules.for_project(project)
    targets = []
    for zone in (
        zones_for_decisions().exclude(region_id=snapshot.zone.region_id).filter(backend=snapshot.zone.backend)
    ):
        decision = rules.decide(zone)
        if not decision.allowed:
            targets.append(CopyTarget(zone, decision.reason, by_policy=True))
            continue
        problems = target_problems(snapshot, zone)
        targets.append(CopyTarget(zone, " ".join(p.message for p in problems)))
    return targets
