"""Rollups are idempotent and equal a brute-force sum over segments, whatever the history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.metering.models import Granularity, RollupCursor, UsageRollup, UsageSegment
from portal.metering.rollup import rollup_period, rollup_until
from portal.metering.selectors import daily_usage

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=4, hours=5, minutes=17)


def _segment(project, zone, *, start, end, meter="compute", quantity="1", price="0.0110", vcpus=1, ram=2):
    return UsageSegment.objects.create(
        organization=project.organization,
        project=project,
        resource_type="instance",
        resource_id=uuid.uuid4(),
        resource_name="x",
        zone=zone,
        meter=meter,
        quantity=Decimal(quantity),
        unit_price=Decimal(price),
        vcpus=vcpus,
        ram_gib=ram,
        started_at=start,
        ended_at=end,
    )


def _brute_cost(start, end):
    total = Decimal(0)
    for s in UsageSegment.objects.all():
        lo, hi = max(s.started_at, start), min(s.ended_at or NOW, end)
        if hi > lo:
            total += s.quantity * s.unit_price * Decimal((hi - lo).total_seconds()) / Decimal(3600)
    return total


def test_rolling_up_twice_gives_the_same_rows(project, catalog):
    zone = catalog["fra1-a"]
    _segment(project, zone, start=T0 + timedelta(minutes=30), end=T0 + timedelta(days=1, hours=3))
    _segment(
        project,
        zone,
        start=T0 + timedelta(hours=5),
        end=None,
        meter="disk",
        quantity="50",
        price="0.000137",
        vcpus=0,
        ram=0,
    )
    rollup_period(T0, T0 + timedelta(days=4), Granularity.HOUR, NOW)
    first = sorted(UsageRollup.objects.values_list("meter", "period_start", "cost", "quantity_hours"))
    rollup_period(T0, T0 + timedelta(days=4), Granularity.HOUR, NOW)
    assert sorted(UsageRollup.objects.values_list("meter", "period_start", "cost", "quantity_hours")) == first
    # 30 min in the first hour; 26 h 30 min in all for the compute segment
    compute_hours = sum(r.quantity_hours for r in UsageRollup.objects.filter(meter="compute"))
    assert compute_hours == Decimal("26.5")


def test_the_cursor_moves_forward_and_a_rerun_does_nothing(project, catalog):
    _segment(project, catalog["fra1-a"], start=T0, end=None)
    assert rollup_until(NOW) != (0, 0)
    assert RollupCursor.objects.get().next_hour == datetime(2026, 3, 5, 5, tzinfo=UTC)
    count = UsageRollup.objects.count()
    assert rollup_until(NOW) == (0, 0)
    assert UsageRollup.objects.count() == count


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    histories=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=4 * 24 * 60),  # start, minutes after T0
            st.one_of(st.none(), st.integers(min_value=1, max_value=3 * 24 * 60)),  # length, or still open
            st.sampled_from(
                [("compute", "1", "0.0110"), ("disk", "80", "0.000137"), ("license", "1", "0.048")]
            ),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_rollup_totals_equal_a_brute_force_sum(project, catalog, histories):
    UsageSegment.objects.all().delete()
    UsageRollup.objects.all().delete()
    zone = catalog["fra1-a"]
    for start_min, length, (meter, quantity, price) in histories:
        start = T0 + timedelta(minutes=start_min)
        end = None if length is None else min(start + timedelta(minutes=length), NOW)
        if start >= NOW:
            continue
        _segment(project, zone, start=start, end=end, meter=meter, quantity=quantity, price=price)
    window_end = T0 + timedelta(days=4)  # complete days only
    rollup_period(T0, window_end, Granularity.HOUR, NOW)
    hourly = sum(r.cost for r in UsageRollup.objects.filter(granularity="hour"))
    rollup_period(T0, window_end, Granularity.DAY, NOW)
    daily = sum(r.cost for r in UsageRollup.objects.filter(granularity="day"))
    expected = _brute_cost(T0, window_end)
    assert abs(hourly - expected) < Decimal("0.0001")
    assert abs(daily - expected) < Decimal("0.0001")
    # The page's reader: complete days from rollups plus today from segments = everything so far.
    days = daily_usage(start=T0.date(), end=NOW.date(), now=NOW, project=project)
    assert abs(sum(d.cost for d in days) - _brute_cost(T0, NOW)) < Decimal("0.0001")


def test_days_the_rollup_task_has_not_reached_are_read_from_segments(project, catalog):
    # Rolled up to the end of 2 March; 3 March is over but not rolled up yet (the task is behind).
    _segment(project, catalog["fra1-a"], start=T0, end=None)
    rollup_until(T0 + timedelta(days=2, hours=1))
    days = daily_usage(start=T0.date(), end=NOW.date(), now=NOW, project=project)
    assert [round(d.cost, 4) for d in days] == [Decimal("0.264")] * 4 + [
        round(Decimal("0.011") * Decimal(5 + 17 / 60), 4)
    ]
