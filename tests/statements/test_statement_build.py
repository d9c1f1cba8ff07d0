"""A statement's lines and total equal a direct sum over the month's segments, from either source."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.metering.models import RollupCursor, UsageRollup, UsageSegment
from portal.metering.rollup import rollup_until
from portal.statements.selectors import Source, statement_build
from portal.tenancy.models import Project
from tests.factories import ProjectFactory
from tests.statements.helpers import make_segment

MONTH = date(2026, 3, 1)
START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
NOW = datetime(2026, 4, 3, 8, 30, tzinfo=UTC)

METERS = [
    ("compute", "1", "0.0110"),
    ("compute", "1", "0.0890"),  # the same meter at another price (a resize, a price change)
    ("disk", "80", "0.000137"),
    ("license", "1", "0.048"),
    ("volume", "250", "0.000137"),
]


def _brute(start: datetime, end: datetime, now: datetime) -> dict:
    """{(project id, meter): [quantity-hours, cost]} straight from the segments."""
    totals: dict = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for s in UsageSegment.objects.all():
        lo, hi = max(s.started_at, start), min(s.ended_at or now, end)
        if hi > lo:
            hours = Decimal((hi - lo).total_seconds()) / Decimal(3600)
            totals[(s.project_id, s.meter)][0] += s.quantity * hours
            totals[(s.project_id, s.meter)][1] += s.quantity * s.unit_price * hours
    return totals


def _assert_matches(draft, expected: dict, tolerance: Decimal) -> None:
    assert {(line.project_id, line.meter) for line in draft.lines} == set(expected)
    for line in draft.lines:
        quantity, cost = expected[(line.project_id, line.meter)]
        assert abs(line.quantity_hours - quantity) < tolerance * 100  # quantities are GiB-hours
        assert abs(line.cost - cost) < tolerance
    exact = sum((cost for _q, cost in expected.values()), Decimal(0))
    assert abs(sum(line.cost for line in draft.lines) - exact) < tolerance
    # The amount due is that sum to the cent.
    assert abs(draft.total - exact) <= Decimal("0.005") + tolerance
    assert draft.total == draft.total.quantize(Decimal("0.01"))


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    histories=st.lists(
        st.tuples(
            st.integers(min_value=-6 * 24 * 60, max_value=37 * 24 * 60),  # start, minutes after 1 March
            st.one_of(st.none(), st.integers(min_value=1, max_value=20 * 24 * 60)),  # length, or open
            st.sampled_from(METERS),
            st.booleans(),  # which project
        ),
        min_size=1,
        max_size=10,
    )
)
def test_totals_equal_a_direct_sum_over_the_months_segments(org, project, catalog, histories):
    UsageSegment.objects.all().delete()
    UsageRollup.objects.all().delete()
    RollupCursor.objects.all().delete()
    Project.objects.filter(slug="data-lab").delete()
    other = ProjectFactory(organization=org, name="Data lab", slug="data-lab")
    for start_min, length, (meter, quantity, price), first in histories:
        start = START + timedelta(minutes=start_min)
        if start >= NOW:
            continue
        end = None if length is None else min(start + timedelta(minutes=length), NOW)
        make_segment(
            project if first else other,
            catalog["fra1-a"],
            start=start,
            end=end,
            meter=meter,
            quantity=quantity,
            price=price,
        )
    expected = _brute(START, END, NOW)

    from_segments = statement_build(organization=org, month=MONTH, now=NOW)
    assert from_segments.source == Source.SEGMENTS  # nothing rolled up yet
    _assert_matches(from_segments, expected, Decimal("0.000005"))

    if not UsageSegment.objects.exists():
        return  # every drawn segment started after NOW: nothing to roll up, nothing more to check
    rollup_until(NOW)  # rolls every complete hour and day up to NOW, the whole of March included
    from_rollups = statement_build(organization=org, month=MONTH, now=NOW)
    assert from_rollups.source == Source.ROLLUPS
    # Rollups round each day's cost to 1e-6: at most 31 days x zones off per line.
    _assert_matches(from_rollups, expected, Decimal("0.0001"))


def test_lines_are_per_project_and_meter_and_snapshot_the_project_name(org, project, catalog):
    zone = catalog["fra1-a"]
    make_segment(project, zone, start=START + timedelta(days=1), end=START + timedelta(days=2))
    make_segment(project, zone, start=START + timedelta(days=3), end=START + timedelta(days=3, hours=12))
    make_segment(project, zone, start=START, end=None, meter="disk", quantity="50", price="0.000137")
    draft = statement_build(organization=org, month=MONTH, now=NOW)
    assert [(line.project_name, line.meter) for line in draft.lines] == [
        ("Web shop", "compute"),
        ("Web shop", "disk"),
    ]
    compute, disk = draft.lines
    assert compute.quantity_hours == Decimal("36.0000")
    assert compute.cost == Decimal("0.396000")
    assert disk.quantity_hours == Decimal(50 * 31 * 24)  # the open disk segment, March only
    assert disk.unit == "GiB-hours"


def test_the_current_month_is_a_live_preview_up_to_now(org, project, catalog):
    mid = datetime(2026, 3, 11, 12, tzinfo=UTC)
    make_segment(project, catalog["fra1-a"], start=START, end=None)
    draft = statement_build(organization=org, month=MONTH, now=mid)
    assert not draft.is_final
    assert not draft.month_complete
    assert draft.source == Source.SEGMENTS
    assert draft.lines[0].quantity_hours == Decimal(10 * 24 + 12)


def test_a_month_that_has_not_started_is_refused(org):
    with pytest.raises(ValueError, match="hasn't started"):
        statement_build(organization=org, month=date(2026, 5, 1), now=NOW)
