"""Money as shown: every total on the usage pages and statements is the sum of the rows under it.

Rule (portal.lib.money): a total is the exact sum rounded once to the cent; its rows are rounded to
the cent so that they add up to it, each its exact value rounded down or up.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from portal.lib.money import CENT, apportion, money
from portal.metering.models import UsageSegment
from portal.metering.periods import preset_period
from portal.metering.report import usage_report


def test_rows_of_fractions_of_a_cent_add_up_to_their_total():
    assert apportion([Decimal("0.004")] * 3) == [Decimal("0.01"), Decimal("0.00"), Decimal("0.00")]
    assert apportion([Decimal("0.331")] * 3) == [Decimal("0.33")] * 3
    assert apportion([Decimal("0.333333")] * 3) == [Decimal("0.34"), Decimal("0.33"), Decimal("0.33")]
    assert apportion([Decimal("0.006"), Decimal("0.004")], Decimal("0.01")) == [Decimal("0.01"), Decimal("0")]
    assert apportion([]) == []


def test_a_total_that_is_no_rounding_of_the_rows_is_refused():
    with pytest.raises(ValueError):
        apportion([Decimal("0.004")], Decimal("0.02"))


amounts = st.lists(st.decimals(min_value=0, max_value=1000, places=6), max_size=30)


@given(amounts)
def test_apportioned_rows_add_up_and_stay_within_a_cent(values):
    shown = apportion(values)
    assert sum(shown, Decimal(0)) == money(sum(values, Decimal(0)))
    assert all(abs(s - v) < CENT for s, v in zip(shown, values, strict=True))


@given(st.lists(amounts, min_size=1, max_size=5))
def test_apportioning_in_two_levels_keeps_every_level_adding_up(groups):
    """Statements: lines to project subtotals, subtotals to the total."""
    total = money(sum((v for g in groups for v in g), Decimal(0)))
    subtotals = apportion([sum(g, Decimal(0)) for g in groups], total)
    for group, subtotal in zip(groups, subtotals, strict=True):
        assert sum(apportion(group, subtotal), Decimal(0)) == subtotal


# --- on the pages ------------------------------------------------------------------------------


def _tiny_servers(project, zone, count: int, minutes: int = 20, *, one_a_day: bool = False):
    """`count` servers that ran for `minutes` (today, or one a day back from today): 0.0037 EUR
    of compute each for 20 minutes, 0.00 on its own."""
    for i in range(count):
        start = timezone.now() - timedelta(minutes=minutes + 1, days=i if one_a_day else 0)
        UsageSegment.objects.create(
            organization=project.organization,
            project=project,
            resource_type="instance",
            resource_id=uuid.uuid4(),
            resource_name=f"web-{i + 1}",
            zone=zone,
            meter="compute",
            quantity=Decimal(1),
            unit_price=Decimal("0.0110"),
            vcpus=1,
            ram_gib=2,
            started_at=start,
            ended_at=start + timedelta(minutes=minutes),
        )


def _cells(html: str, pattern: str) -> list[Decimal]:
    return [Decimal(v) for v in re.findall(pattern, html, re.S)]


@pytest.mark.django_db
def test_the_usage_page_total_is_the_sum_of_its_server_rows(project, owner, client_as, catalog):
    _tiny_servers(project, catalog["fra1-a"], 3)
    url = reverse("metering:project_usage", args=[project.organization.slug, project.slug]) + "?period=7d"

    page = client_as(owner).get(url).content.decode()

    headline = _cells(page, r'class="usage-figure">([\d.]+) ')[0]
    assert headline == Decimal("0.01")
    server_totals = _cells(page, r'<td class="num"><strong>([\d.]+)</strong></td>')
    assert len(server_totals) == 3 and sum(server_totals) == headline
    assert sorted(server_totals) == [Decimal("0.00"), Decimal("0.00"), Decimal("0.01")]


@pytest.mark.django_db
def test_the_days_and_meters_of_the_report_add_up_to_its_total(project, catalog):
    _tiny_servers(project, catalog["fra1-a"], 6, minutes=10, one_a_day=True)
    today = timezone.now().date()

    report = usage_report(preset_period("7d", today), project=project)

    assert report.total_cost == Decimal("0.01")  # 6 days of 0.00183
    assert sum(d.cost for d in report.days) == report.total_cost
    assert sum(report.cost_by_meter.values()) == report.total_cost
    for day in report.days:
        assert sum(day.cost_by_meter.values()) == day.cost
    body = report.as_json()
    assert sum(Decimal(c) for c in body["cost"]) == Decimal(body["totals"]["cost"])


@pytest.mark.django_db
def test_the_organization_page_projects_add_up(org, project, owner, client_as, catalog):
    from tests.factories import ProjectFactory

    other = ProjectFactory(organization=org, name="Data lab", slug="data-lab")
    _tiny_servers(project, catalog["fra1-a"], 1)
    _tiny_servers(other, catalog["fra1-a"], 1)

    page = client_as(owner).get(reverse("metering:org_usage", args=[org.slug]) + "?period=7d").content.decode()

    section = page[page.index("Cost by project") :]
    rows = _cells(section.split("<tfoot>")[0], r'<td class="num">([\d.]+)</td>')
    total = _cells(section.split("<tfoot>")[1], r'<td class="num">([\d.]+)</td>')[0]
    assert total == Decimal("0.01") and sum(rows) == total
