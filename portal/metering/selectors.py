"""Reads for usage pages and graphs: rollups for complete days, segments only for today."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Q, Sum
from django.utils import timezone

from portal.metering.models import Granularity, Meter, RollupCursor, UsageRollup
from portal.metering.rollup import buckets, floor_day, floor_hour, segment_rows, segments_overlapping

STORAGE_METERS = (Meter.DISK, Meter.VOLUME, Meter.SNAPSHOT)


@dataclass
class DayUsage:
    day: date
    cost_by_meter: dict[str, Decimal] = field(default_factory=dict)
    vcpu_hours: Decimal = Decimal(0)
    ram_gib_hours: Decimal = Decimal(0)
    storage_gib_hours: Decimal = Decimal(0)

    @property
    def cost(self) -> Decimal:
        return sum(self.cost_by_meter.values(), Decimal(0))


def daily_usage(*, start: date, end: date, now: datetime | None = None, **scope) -> list[DayUsage]:
    """One DayUsage per day in [start, end] for a scope (project=… or organization=…).

    Days the rollup task has completed come from daily rollups, the complete hours after them
    (today's, or any day the task has not finished yet) from hourly rollups, and only the hour in
    progress — or hours the task has not reached while it is behind — from segments.
    """
    now = now or timezone.now()
    days = {
        start + timedelta(days=i): DayUsage(start + timedelta(days=i)) for i in range((end - start).days + 1)
    }
    begin = datetime.combine(start, datetime.min.time(), tzinfo=now.tzinfo)
    stop = min(datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo), now)
    cursor = RollupCursor.objects.values_list("next_hour", flat=True).first()
    rolled_day = min(floor_day(cursor), floor_day(now)) if cursor else begin
    rolled_hour = min(cursor, floor_hour(now)) if cursor else begin
    split_day = min(max(begin, rolled_day), stop)
    split_hour = min(max(split_day, rolled_hour), stop)
    parts = Q()
    for granularity, since, until in (
        (Granularity.DAY, begin, split_day),
        (Granularity.HOUR, split_day, split_hour),
    ):
        if since < until:  # the scope inside each half, so each can use its index
            parts |= Q(granularity=granularity, period_start__gte=since, period_start__lt=until, **scope)
    if parts:
        rows = (
            UsageRollup.objects.filter(parts)
            .values("period_start", "meter")
            .annotate(cost=Sum("cost"), q=Sum("quantity_hours"), v=Sum("vcpu_hours"), r=Sum("ram_gib_hours"))
            .order_by()
        )
        for row in rows:
            _add(
                days.get(row["period_start"].date()), row["meter"], row["cost"], row["q"], row["v"], row["r"]
            )
    if split_hour < stop:
        live = buckets(segment_rows(split_hour, stop, **scope), split_hour, stop, Granularity.DAY, now)
        for (_p, _o, _z, meter, bucket), (q, v, r, c) in live.items():
            _add(days.get(bucket.date()), meter, c, q, v, r)
    return list(days.values())


def _add(day: DayUsage | None, meter: str, cost, quantity, vcpu, ram) -> None:
    if day is None:
        return
    day.cost_by_meter[meter] = day.cost_by_meter.get(meter, Decimal(0)) + (cost or 0)
    day.vcpu_hours += vcpu or 0
    day.ram_gib_hours += ram or 0
    if meter in STORAGE_METERS:
        day.storage_gib_hours += quantity or 0


def month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def month_to_date_cost(now: datetime | None = None, **scope) -> Decimal:
    now = now or timezone.now()
    start, _ = month_bounds(now)
    return sum(
        (d.cost for d in daily_usage(start=start.date(), end=now.date(), now=now, **scope)), Decimal(0)
    )


def cost_by_resource(*, start: datetime, end: datetime, now: datetime | None = None, **scope) -> list[dict]:
    """Cost and hours per resource for a period (the per-server table), from that period's segments."""
    now = now or timezone.now()
    from portal.metering.rollup import hours_within

    table: dict = defaultdict(
        lambda: {"cost": Decimal(0), "hours": Decimal(0), "by_meter": defaultdict(Decimal)}
    )
    for segment in segments_overlapping(start, min(end, now), **scope).select_related("zone"):
        hours = hours_within(segment, start, min(end, now), now)
        row = table[segment.resource_id]
        row.update(
            resource_id=segment.resource_id,
            project_id=segment.project_id,
            name=segment.resource_name,
            type=segment.resource_type,
            zone=segment.zone.code,
        )
        cost = segment.quantity * segment.unit_price * hours
        row["cost"] += cost
        row["by_meter"][segment.meter] += cost
        if segment.meter == Meter.COMPUTE:
            row["hours"] += hours
    return sorted(table.values(), key=lambda r: -r["cost"])


@dataclass
class ResourceMonth:
    """What one server or volume has cost since the start of the month (the per-VM panel)."""

    since: datetime
    cost: Decimal = Decimal(0)
    running_hours: Decimal = Decimal(0)
    cost_by_meter: dict[str, Decimal] = field(default_factory=dict)


def resource_month_to_date(*, resource_id, now: datetime | None = None) -> ResourceMonth:
    """Cost and running hours of one resource this month, from its segments (a handful of rows)."""
    now = now or timezone.now()
    start, end = month_bounds(now)
    usage = ResourceMonth(since=start)
    for row in cost_by_resource(start=start, end=end, now=now, resource_id=resource_id):
        usage.cost += row["cost"]
        usage.running_hours += row["hours"]
        for meter, cost in row["by_meter"].items():
            usage.cost_by_meter[meter] = usage.cost_by_meter.get(meter, Decimal(0)) + cost
    return usage


def cost_by_project(
    *, start: date, end: date, organization, now: datetime | None = None
) -> dict[int, Decimal]:
    """{project id: cost} over the days [start, end] of an organization: daily rollups plus today."""
    now = now or timezone.now()
    today = floor_day(now)
    begin = datetime.combine(start, datetime.min.time(), tzinfo=now.tzinfo)
    finish = min(datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo), today)
    totals: dict[int, Decimal] = defaultdict(Decimal)
    rows = (
        UsageRollup.objects.filter(
            organization=organization,
            granularity=Granularity.DAY,
            period_start__gte=begin,
            period_start__lt=finish,
        )
        .values("project")
        .annotate(cost=Sum("cost"))
    )
    for row in rows:
        totals[row["project"]] += row["cost"] or 0
    if start <= today.date() <= end:
        live = segment_rows(today, now, organization=organization)
        for (project, _o, _z, _m, _b), (_q, _v, _r, cost) in buckets(
            live, today, now, Granularity.DAY, now
        ).items():
            totals[project] += cost
    return dict(totals)
