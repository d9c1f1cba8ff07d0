"""What the zone picker shows: every zone grouped by jurisdiction and region, each with the
placement decision, its status and capacity, and a pin per region on the world map."""

from __future__ import annotations

from dataclasses import dataclass, field

from portal.catalog.models import Availability, Jurisdiction, Region, Zone, ZoneStatus
from portal.residency.placement import Decision, PlacementRules, zones_for_decisions

# Must match portal/catalog/worldmap/build.mjs, which drew static/vendor/world-map/world.svg.
MAP_WIDTH, MAP_WEST, MAP_EAST, MAP_NORTH, MAP_SOUTH = 1000, -128, 180, 72, -47
MAP_SCALE = MAP_WIDTH / (MAP_EAST - MAP_WEST)
MAP_HEIGHT = round((MAP_NORTH - MAP_SOUTH) * MAP_SCALE, 1)


def project_to_map(latitude: float, longitude: float) -> tuple[float, float]:
    """Equirectangular, like the map; a region outside the drawn area is pinned to its edge."""
    x = min(max((longitude - MAP_WEST) * MAP_SCALE, 8), MAP_WIDTH - 8)
    y = min(max((MAP_NORTH - latitude) * MAP_SCALE, 8), MAP_HEIGHT - 8)
    return round(x, 1), round(y, 1)


@dataclass
class ZoneOption:
    zone: Zone
    decision: Decision
    selected: bool = False
    suggestion: Zone | None = None

    @property
    def selectable(self) -> bool:
        return self.decision.allowed and self.zone.accepts_launches

    @property
    def state(self) -> str:
        if not self.decision.allowed:
            return "forbidden"
        return "available" if self.zone.accepts_launches else "unavailable"

    @property
    def note(self) -> str:
        """One line for the customer under the zone's name."""
        if not self.decision.allowed:
            return self.decision.reason
        availability = self.zone.availability
        hint = f" Try {self.suggestion.code} instead." if self.suggestion else ""
        if availability == Availability.SOLD_OUT:
            return f"Sold out right now.{hint}"
        if availability == Availability.CLOSED:
            return f"Closed for maintenance.{hint}"
        room = {
            Availability.AVAILABLE: "Available.",
            Availability.LIMITED: "Limited capacity: the larger sizes may not fit right now.",
        }[availability]
        if self.zone.status == ZoneStatus.DEGRADED:
            return f"{room} Degraded: running, but new resources may be slower to start."
        return room

    @property
    def badges(self) -> list[tuple[str, str]]:
        """(css suffix, text) beside the zone's code; they say what the note says."""
        if not self.decision.allowed:
            return [("forbidden", "Not allowed")]
        badges = []
        availability = self.zone.availability
        if availability != Availability.AVAILABLE:
            short = {Availability.CLOSED: "Closed"}.get(availability, availability.label)
            badges.append((f"availability-{availability}", short))
        if self.zone.status == ZoneStatus.DEGRADED:
            badges.append(("status-degraded", "Degraded"))
        return badges


PIN_SPACING = 19.0  # map units between pin centres; close regions (Frankfurt, Zurich) are nudged apart


def spread_pins(points: list[tuple[float, float]], spacing: float = PIN_SPACING) -> list[tuple[float, float]]:
    """Push pins that would overlap away from each other, a little at a time, so each stays clickable.

    The true location is still drawn (a dot with a line to the pin) by the template.
    """
    moved = [list(p) for p in points]
    for _ in range(60):
        settled = True
        for i in range(len(moved)):
            for j in range(i + 1, len(moved)):
                dx, dy = moved[j][0] - moved[i][0], moved[j][1] - moved[i][1]
                distance = (dx * dx + dy * dy) ** 0.5
                if distance >= spacing:
                    continue
                settled = False
                if distance < 0.01:  # same spot: separate sideways
                    dx, dy, distance = 1.0, 0.0, 1.0
                push = (spacing - distance) / 2 + 0.1
                ux, uy = dx / distance, dy / distance
                moved[i][0] -= ux * push
                moved[i][1] -= uy * push
                moved[j][0] += ux * push
                moved[j][1] += uy * push
        if settled:
            break
    return [(round(x, 1), round(y, 1)) for x, y in moved]


@dataclass
class RegionGroup:
    region: Region
    options: list[ZoneOption] = field(default_factory=list)
    pin_at: tuple[float, float] = (0.0, 0.0)

    @property
    def state(self) -> str:
        states = {o.state for o in self.options}
        if "available" in states:
            return "available"
        return "unavailable" if "unavailable" in states else "forbidden"

    @property
    def location(self) -> tuple[float, float]:
        return project_to_map(float(self.region.latitude), float(self.region.longitude))

    @property
    def pin(self) -> tuple[float, float]:
        return self.pin_at

    @property
    def nudged(self) -> bool:
        return self.pin_at != self.location

    @property
    def summary(self) -> str:
        if self.state == "forbidden":
            return self.options[0].decision.reason if self.options else ""
        if self.state == "unavailable":
            return "No zone here accepts new resources right now."
        return f"{sum(o.selectable for o in self.options)} zone(s) available"


@dataclass
class JurisdictionGroup:
    jurisdiction: Jurisdiction
    regions: list[RegionGroup] = field(default_factory=list)


@dataclass
class ZonePicker:
    field_name: str
    groups: list[JurisdictionGroup]
    map_width: int = MAP_WIDTH
    map_height: float = MAP_HEIGHT
    errors: list[str] = field(default_factory=list)

    @property
    def regions(self) -> list[RegionGroup]:
        return [r for g in self.groups for r in g.regions]

    @property
    def open_groups(self) -> list[JurisdictionGroup]:
        """Jurisdictions with at least one region the policy allows."""
        return [g for g in self.groups if any(r.state != "forbidden" for r in g.regions)]

    @property
    def forbidden_regions(self) -> list[RegionGroup]:
        """Regions of jurisdictions the policy rules out entirely, shown together and compactly."""
        return [r for g in self.groups if g not in self.open_groups for r in g.regions]

    @property
    def options(self) -> list[ZoneOption]:
        return [o for r in self.regions for o in r.options]


def _suggest(option: ZoneOption, options: list[ZoneOption]) -> Zone | None:
    """Another zone the customer may use: same region first, then same jurisdiction, then any."""
    candidates = [o for o in options if o.selectable and o is not option]
    region = option.zone.region
    for same in (
        lambda o: o.zone.region_id == region.pk,
        lambda o: o.zone.region.jurisdiction_id == region.jurisdiction_id,
        lambda o: True,
    ):
        for candidate in candidates:
            if same(candidate):
                return candidate.zone
    return None


def zone_picker(
    *, rules: PlacementRules, selected_zone_id: int | None = None, field_name: str = "zone"
) -> ZonePicker:
    zones = zones_for_decisions().filter(region__is_active=True)
    options = [ZoneOption(zone, rules.decide(zone), selected=zone.pk == selected_zone_id) for zone in zones]
    for option in options:
        if option.decision.allowed and not option.zone.accepts_launches:
            option.suggestion = _suggest(option, options)
    groups: dict[int, JurisdictionGroup] = {}
    regions: dict[int, RegionGroup] = {}
    for option in options:
        region = option.zone.region
        if region.pk not in regions:
            regions[region.pk] = RegionGroup(region)
            jurisdiction = region.jurisdiction
            groups.setdefault(jurisdiction.pk, JurisdictionGroup(jurisdiction)).regions.append(
                regions[region.pk]
            )
        regions[region.pk].options.append(option)
    ordered = sorted(
        groups.values(),
        key=lambda g: (not any(r.state != "forbidden" for r in g.regions), g.jurisdiction.name),
    )
    all_regions = [r for g in ordered for r in g.regions]
    for region, pin in zip(all_regions, spread_pins([r.location for r in all_regions]), strict=True):
        region.pin_at = pin
    return ZonePicker(field_name=field_name, groups=ordered)
