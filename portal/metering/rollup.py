"""Hourly and daily totals per project x zone x meter, computed from segments.

`rollup_period(start, end, granularity)` recomputes every bucket in [start, end) from the
segments overlapping it and replaces the stored rows in one transaction: running it twice gives
the same rows. The beat task (`tasks.rollup`) rolls complete hours forward from a cursor and
recomputes the complete days they touch.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.metering.models import Granularity, RollupCursor, UsageRollup, UsageSegment

STEP = {Granularity.HOUR: timedelta(hours=1), Granularity.DAY: timedelta(days=1)}
SECONDS_PER_HOUR = Decimal(3600)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def segments_overlapping(start: datetime, end: datetime, **filters):
    return UsageSegment.objects.filter(started_at__lt=end, **filters).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gt=start)
    )


def segment_rows(start: datetime, end: datetime, **filters):
    """The segments overlapping [start, end) as tuples of BUCKET_FIELDS, unordered.

    Open ones and ones ended after `start`, as a UNION ALL so each half searches a
    (scope, ended_at) index: as one `open OR ended after` condition the database scans all the
    scope's history.
    """
    scoped = UsageSegment.objects.filter(started_at__lt=end, **filters).order_by()
    halves = (scoped.filter(ended_at__isnull=True), scoped.filter(ended_at__gt=start))
    rows = halves[0].values_list(*BUCKET_FIELDS).union(halves[1].values_list(*BUCKET_FIELDS), all=True)
    return rows.order_by()  # the model's ordering would sort the whole union


def hours_within(segment, start: datetime, end: datetime, now: datetime) -> Decimal:
    """Hours of `segment` that fall within [start, end) (an open segment runs until `now`)."""
    seg_end = segment.ended_at or now
    overlap = (min(seg_end, end) - max(segment.started_at, start)).total_seconds()
    return Decimal(overlap) / SECONDS_PER_HOUR if overlap > 0 else Decimal(0)


BUCKET_FIELDS = (
    "project_id",
    "organization_id",
    "zone_id",
    "meter",
    "started_at",
    "ended_at",
    "quantity",
    "unit_price",
    "vcpus",
    "ram_gib",
)


def buckets(rows, start: datetime, end: datetime, granularity: str, now: datetime) -> dict:
    """{(project, organization, zone, meter, bucket start): [quantity-hours, vcpu-h, ram-h, cost]}.

    `rows` are tuples of BUCKET_FIELDS (from `segment_rows`): a year of history can be millions
    of segments, and model instances would cost more than the arithmetic.
    """
    step = STEP[granularity]
    floor = floor_hour if granularity == Granularity.HOUR else floor_day
    totals: dict = defaultdict(lambda: [Decimal(0)] * 4)
    for project, org, zone, meter, started, ended, quantity, price, vcpus, ram in rows:
        seg_start = max(started, start)
        seg_end = min(ended or now, end)
        bucket = floor(seg_start)
        while bucket < seg_end:
            following = bucket + step
            seconds = (min(seg_end, following) - max(seg_start, bucket)).total_seconds()
            if seconds > 0:
                hours = Decimal(seconds) / SECONDS_PER_HOUR
                row = totals[(project, org, zone, meter, bucket)]
                row[0] += quantity * hours
                row[1] += vcpus * hours
                row[2] += ram * hours
                row[3] += quantity * price * hours
            bucket = following
    return totals


@transaction.atomic
def rollup_period(start: datetime, end: datetime, granularity: str, now: datetime | None = None) -> int:
    now = now or timezone.now()
    totals = buckets(segment_rows(start, end), start, end, granularity, now)
    UsageRollup.objects.filter(
        granularity=granularity, period_start__gte=start, period_start__lt=end
    ).delete()
    UsageRollup.objects.bulk_create(
        (
            UsageRollup(
                project_id=project,
                organization_id=org,
                zone_id=zone,
                meter=meter,
                granularity=granularity,
                period_start=bucket,
                quantity_hours=round(q, 4),
                vcpu_hours=round(v, 4),
                ram_gib_hours=round(r, 4),
                cost=round(c, 6),
            )
            for (project, org, zone, meter, bucket), (q, v, r, c) in totals.items()
        ),
        batch_size=2000,
    )
    return len(totals)


def rollup_until(now: datetime | None = None) -> tuple[int, int]:
    """Roll complete hours since the cursor, and the complete days they belong to."""
    now = now or timezone.now()
    end_hour = floor_hour(now)
    cursor = RollupCursor.objects.first()
    if cursor is None:
        first = UsageSegment.objects.order_by("started_at").values_list("started_at", flat=True).first()
        if first is None:
            return 0, 0
        cursor = RollupCursor.objects.create(next_hour=floor_hour(first))
    start_hour = cursor.next_hour
    if start_hour >= end_hour:
        return 0, 0
    hours = rollup_period(start_hour, end_hour, Granularity.HOUR, now)
    day_start, day_end = floor_day(start_hour), floor_day(end_hour)
    days = rollup_period(day_start, day_end, Granularity.DAY, now) if day_start < day_end else 0
    # A day that was complete is recomputed from segments; the cursor only moves forward.
    RollupCursor.objects.filter(pk=cursor.pk, next_hour=start_hour).update(next_hour=end_hour)
    return hours, days
