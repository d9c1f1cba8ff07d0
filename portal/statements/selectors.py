"""Reads for statements: a month's lines (project x meter) from rollups or segments."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from portal.metering.models import Granularity, Meter, RollupCursor, UsageRollup
from portal.metering.rollup import hours_within, segments_overlapping
from portal.metering.selectors import month_bounds
from portal.statements.models import Statement, StatementStatus, meter_unit
from portal.tenancy.models import Organization, Project

CENT = Decimal("0.01")
QUANTITY_PLACES = Decimal("0.0001")  # StatementLine.quantity_hours
COST_PLACES = Decimal("0.000001")  # StatementLine.cost


class Source:
    ROLLUPS = "daily rollups"
    SEGMENTS = "usage segments"


@dataclass(frozen=True)
class DraftLine:
    project_id: int
    project_name: str
    meter: str
    quantity_hours: Decimal
    cost: Decimal

    @property
    def meter_label(self) -> str:
        return Meter(self.meter).label

    @property
    def unit(self) -> str:
        return meter_unit(self.meter)


@dataclass
class StatementDraft:
    """A month's statement as computed now; stored by `statement_close`, shown live as a preview."""

    organization: Organization
    month: date
    currency: str
    as_of: datetime
    source: str
    lines: list[DraftLine] = field(default_factory=list)
    is_final: bool = False  # a draft is never final; the stored, closed statement is
    closed_at: datetime | None = None
    content_hash: str = ""

    @property
    def organization_name(self) -> str:
        return self.organization.name

    @property
    def total(self) -> Decimal:
        return line_total(self.lines)

    @property
    def month_complete(self) -> bool:
        return self.as_of >= month_start_end(self.month)[1]


def line_total(lines) -> Decimal:
    """The amount for a statement: the exact sum of its lines, rounded to the cent."""
    return sum((line.cost for line in lines), Decimal(0)).quantize(CENT, rounding=ROUND_HALF_UP)


def month_start_end(month: date) -> tuple[datetime, datetime]:
    return month_bounds(datetime(month.year, month.month, 1, tzinfo=UTC))


def first_of_month(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def previous_month(month: date) -> date:
    return date(month.year - 1, 12, 1) if month.month == 1 else date(month.year, month.month - 1, 1)


def rolled_up_until() -> datetime | None:
    return RollupCursor.objects.values_list("next_hour", flat=True).first()


def statement_build(
    *, organization: Organization, month: date, now: datetime | None = None
) -> StatementDraft:
    """Lines per project x meter for `month` (the 1st), as of `now`.

    A complete month whose hours are all rolled up is read from the daily rollups (one grouped
    query); otherwise — the current month, or a month the rollup task hasn't finished — from the
    month's segments. Both equal a direct sum over the segments (rollups round each day to 1e-6).
    """
    now = now or timezone.now()
    start, end = month_start_end(month)
    if now < start:
        raise ValueError(f"{month:%Y-%m} hasn't started yet.")
    cursor = rolled_up_until()
    if now >= end and cursor is not None and cursor >= end:
        totals, source = _from_rollups(organization, start, end), Source.ROLLUPS
    else:
        totals, source = _from_segments(organization, start, min(end, now), now), Source.SEGMENTS
    names = dict(Project.objects.filter(pk__in={p for p, _ in totals}).values_list("pk", "name"))
    lines = [
        DraftLine(
            project_id=project_id,
            project_name=names[project_id],
            meter=meter,
            quantity_hours=quantity.quantize(QUANTITY_PLACES, rounding=ROUND_HALF_UP),
            cost=cost.quantize(COST_PLACES, rounding=ROUND_HALF_UP),
        )
        for (project_id, meter), (quantity, cost) in totals.items()
    ]
    lines.sort(key=lambda line: (line.project_name, line.project_id, line.meter))
    return StatementDraft(
        organization=organization,
        month=first_of_month(month),
        currency=settings.PORTAL_CURRENCY,
        as_of=now,
        source=source,
        lines=lines,
    )


def _from_rollups(organization, start: datetime, end: datetime) -> dict:
    rows = (
        UsageRollup.objects.filter(
            organization=organization,
            granularity=Granularity.DAY,
            period_start__gte=start,
            period_start__lt=end,
        )
        .values("project_id", "meter")
        .annotate(quantity=Sum("quantity_hours"), cost=Sum("cost"))
    )
    return {(row["project_id"], row["meter"]): (row["quantity"], row["cost"]) for row in rows}


def _from_segments(organization, start: datetime, end: datetime, now: datetime) -> dict:
    totals: dict = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for segment in segments_overlapping(start, end, organization=organization).iterator(chunk_size=2000):
        hours = hours_within(segment, start, end, now)
        if hours:
            row = totals[(segment.project_id, segment.meter)]
            row[0] += segment.quantity * hours
            row[1] += segment.quantity * segment.unit_price * hours
    return {key: (quantity, cost) for key, (quantity, cost) in totals.items()}


def statement_for_month(
    *, organization: Organization, month: date, now: datetime | None = None
) -> Statement | StatementDraft:
    """The closed statement for `month`, or else a live preview of it."""
    closed = (
        Statement.objects.filter(organization=organization, month=month, status=StatementStatus.CLOSED)
        .prefetch_related("lines")
        .first()
    )
    return closed or statement_build(organization=organization, month=month, now=now)


def statement_months(*, organization: Organization, now: datetime | None = None) -> list:
    """What the statements page lists, newest first: the closed statements, plus live previews of
    the current month and of the previous month while it isn't closed yet."""
    now = now or timezone.now()
    closed = {
        s.month: s for s in Statement.objects.filter(organization=organization, status=StatementStatus.CLOSED)
    }
    current = first_of_month(now)
    live = [current]
    previous = previous_month(current)
    if previous not in closed and month_start_end(previous)[1] > organization.created_at:
        live.append(previous)
    items = [statement_build(organization=organization, month=month, now=now) for month in live]
    items += list(closed.values())
    return sorted(items, key=lambda item: item.month, reverse=True)


def month_is_billable(organization: Organization, month: date, now: datetime) -> bool:
    """A month that has started and in which the organization existed."""
    start, end = month_start_end(month)
    return start <= now and end > organization.created_at
