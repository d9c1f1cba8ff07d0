"""Usage pages of a project and an organization: periods, the graphs' JSON, the CSV, who may read
them, the per-server panel of the detail page, and a query count that does not grow with servers."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.metering.models import Granularity, UsageSegment
from portal.metering.periods import MAX_DAYS
from portal.metering.rollup import floor_day, rollup_period
from portal.metering.selectors import resource_month_to_date
from tests.factories import InstanceFactory, ProjectFactory


def _url(name, project, query=""):
    return reverse(f"metering:{name}", args=[project.organization.slug, project.slug]) + query


def _org_url(name, org, query=""):
    return reverse(f"metering:{name}", args=[org.slug]) + query


def _segment(project, zone, *, start, end=None, meter="compute", quantity="1", price="0.0110", **extra):
    defaults = {"vcpus": 1, "ram_gib": 2} if meter == "compute" else {}
    return UsageSegment(
        organization=project.organization,
        project=project,
        resource_type=extra.pop("resource_type", "instance"),
        resource_id=extra.pop("resource_id", None) or uuid.uuid4(),
        resource_name=extra.pop("name", "web-1"),
        zone=zone,
        meter=meter,
        quantity=Decimal(quantity),
        unit_price=Decimal(price),
        started_at=start,
        ended_at=end,
        **(defaults | extra),
    )


def _disk(project, zone, *, start, end=None, resource_id):
    """A 50 GiB root disk at 0.000137 per GiB-hour."""
    return _segment(
        project,
        zone,
        start=start,
        end=end,
        meter="disk",
        quantity="50",
        price="0.000137",
        resource_id=resource_id,
    )


def _roll_up(since: datetime, now: datetime) -> None:
    rollup_period(floor_day(since), floor_day(now), Granularity.DAY, now)


@pytest.fixture
def two_days(project, catalog):
    """Yesterday: a server ran 10 h (compute 0.0110/h, 50 GiB disk); today it has run since 01:00."""
    zone = catalog["fra1-a"]
    now = timezone.now()
    today = floor_day(now)
    yesterday = today - timedelta(days=1)
    server = uuid.uuid4()
    booted = yesterday + timedelta(hours=2)
    segments = [
        _segment(project, zone, start=booted, end=booted + timedelta(hours=10), resource_id=server),
        _disk(project, zone, start=booted, resource_id=server),
    ]
    if now - today > timedelta(hours=1):
        segments.append(_segment(project, zone, start=today + timedelta(hours=1), resource_id=server))
    UsageSegment.objects.bulk_create(segments)
    _roll_up(yesterday, now)
    return {"yesterday": yesterday.date(), "today": today.date(), "server": server}


# --- periods -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("period", "days"), [("7d", 7), ("30d", 30), ("90d", 90)])
def test_preset_periods_end_today(period, days, project, owner, client_as):
    body = client_as(owner).get(_url("project_usage_json", project, f"?period={period}")).json()
    today = timezone.now().date()
    assert body["period"]["key"] == period
    assert body["period"]["end"] == today.isoformat()
    assert body["period"]["start"] == (today - timedelta(days=days - 1)).isoformat()
    assert len(body["days"]) == days == body["period"]["days"]


def test_twelve_months_is_a_year_to_today_and_thirty_days_is_the_default(project, owner, client_as):
    client = client_as(owner)
    year = client.get(_url("project_usage_json", project, "?period=12m")).json()["period"]
    today = timezone.now().date()
    assert year["end"] == today.isoformat()
    assert year["days"] in (365, 366)
    assert client.get(_url("project_usage_json", project)).json()["period"]["key"] == "30d"


def test_custom_dates(project, owner, client_as):
    client = client_as(owner)
    query = "?period=custom&start=2026-01-01&end=2026-01-31"
    body = client.get(_url("project_usage_json", project, query)).json()
    assert body["period"] == {
        "key": "custom",
        "label": "01 Jan 2026 to 31 Jan 2026",
        "start": "2026-01-01",
        "end": "2026-01-31",
        "days": 31,
    }
    page = client.get(_url("project_usage", project, query)).content.decode()
    assert "01 Jan 2026 to 31 Jan 2026" in page
    # The export links keep the period.
    assert "usage.csv?period=custom&amp;start=2026-01-01&amp;end=2026-01-31" in page


def test_the_longest_custom_period(project, owner, client_as):
    end = timezone.now().date()
    start = end - timedelta(days=MAX_DAYS - 1)
    response = client_as(owner).get(_url("project_usage_json", project, f"?start={start}&end={end}"))
    assert response.status_code == 200
    assert len(response.json()["days"]) == MAX_DAYS


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?period=custom&start=2026-02-10&end=2026-02-01", "on or before the end date"),
        ("?period=custom&start=2026-02-10", "both a start and an end"),
        ("?period=custom", "both a start and an end"),
        ("?period=custom&start=2026-02-30&end=2026-03-05", "YYYY-MM-DD"),
        ("?period=custom&start=yesterday&end=2026-03-05", "YYYY-MM-DD"),
        ("?period=custom&start=2024-01-01&end=2025-06-01", "at most 400 days"),
        ("?period=5y", "Choose 7 days, 30 days"),
    ],
)
def test_bad_periods_are_a_400_with_the_reason(query, message, project, owner, client_as):
    client = client_as(owner)
    page = client.get(_url("project_usage", project, query))
    assert page.status_code == 400
    assert message in page.content.decode()
    assert 'role="alert"' in page.content.decode()
    data = client.get(_url("project_usage_json", project, query))
    assert data.status_code == 400 and message in data.json()["error"]
    export = client.get(_url("project_usage_csv", project, query))
    assert export.status_code == 400 and message in export.content.decode()


def test_an_end_date_in_the_future_is_refused(project, owner, client_as):
    tomorrow = timezone.now().date() + timedelta(days=1)
    response = client_as(owner).get(_url("project_usage_json", project, f"?start=2026-01-01&end={tomorrow}"))
    assert response.status_code == 400
    assert "can't be after today" in response.json()["error"]


# --- what the page, the JSON and the CSV say ---------------------------------------------------


def test_json_has_one_figure_per_day_for_each_graph(project, owner, client_as, two_days):
    body = client_as(owner).get(_url("project_usage_json", project, "?period=7d")).json()
    assert set(body) == {
        "period",
        "currency",
        "days",
        "meters",
        "cost_by_meter",
        "cost",
        "vcpu_hours",
        "ram_gib_hours",
        "storage_gib_hours",
        "totals",
    }
    assert body["currency"] == "EUR"
    assert body["meters"] == [
        {"key": "compute", "label": "Compute"},
        {"key": "disk", "label": "Server disks"},
    ]
    for series in (body["cost"], body["vcpu_hours"], body["ram_gib_hours"], body["storage_gib_hours"]):
        assert len(series) == 7
    day = body["days"].index(two_days["yesterday"].isoformat())
    assert body["cost_by_meter"]["compute"][day] == "0.11"  # 10 h x 0.0110
    assert body["cost_by_meter"]["disk"][day] == "0.15"  # 22 h x 50 GiB x 0.000137 = 0.1507
    assert body["cost"][day] == "0.26"
    assert body["vcpu_hours"][day] == "10.00"
    assert body["ram_gib_hours"][day] == "20.00"
    assert body["storage_gib_hours"][day] == "1100.00"
    assert body["days"][-1] == two_days["today"].isoformat()
    assert Decimal(body["storage_gib_hours"][-1]) > 0  # today so far, computed on the fly
    # Totals are rounded once from the exact figures: within half a cent a day of the rounded days.
    assert abs(Decimal(body["totals"]["cost"]) - sum(Decimal(c) for c in body["cost"])) <= Decimal("0.035")


def test_csv_export(project, owner, client_as, two_days):
    client = client_as(owner)
    response = client.get(_url("project_usage_csv", project, "?period=7d"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = two_days["today"]
    start = today - timedelta(days=6)
    assert (
        response["Content-Disposition"] == f'attachment; filename="usage-acme-web-shop-{start}-{today}.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "date",
        "compute_cost_eur",
        "disk_cost_eur",
        "total_cost_eur",
        "vcpu_hours",
        "ram_gib_hours",
        "storage_gib_hours",
    ]
    assert len(rows) == 1 + 7
    assert rows[-2] == [
        two_days["yesterday"].isoformat(),
        "0.11",
        "0.15",
        "0.26",
        "10.00",
        "20.00",
        "1100.00",
    ]
    # The CSV and the graphs' JSON say the same.
    body = client.get(_url("project_usage_json", project, "?period=7d")).json()
    assert [r[3] for r in rows[1:]] == body["cost"]


def test_csv_by_resource(project, owner, client_as, two_days):
    response = client_as(owner).get(_url("project_usage_csv", project, "?period=7d&by=resource"))
    assert "usage-by-resource-acme-web-shop" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 1
    assert rows[0]["resource_id"] == str(two_days["server"])
    assert rows[0]["project"] == "web-shop" and rows[0]["name"] == "web-1"
    assert Decimal(rows[0]["running_hours"]) >= 10


def test_csv_neutralises_formulas_in_names(project, owner, client_as, catalog):
    now = timezone.now()
    UsageSegment.objects.bulk_create(
        [_segment(project, catalog["fra1-a"], start=now - timedelta(minutes=30), name="=HYPERLINK(1)")]
    )
    body = client_as(owner).get(_url("project_usage_csv", project, "?period=7d&by=resource")).content.decode()
    assert "'=HYPERLINK(1)" in body


def test_page_shows_tables_for_each_graph_and_the_cost_per_server(project, owner, client_as, two_days):
    instance = InstanceFactory(project=project, name="web-1", status="stopped")
    UsageSegment.objects.filter(resource_id=two_days["server"]).update(resource_id=instance.pk)
    page = client_as(owner).get(_url("project_usage", project, "?period=7d")).content.decode()
    assert 'data-usage-src="/o/acme/p/web-shop/usage.json?period=7d"' in page
    for caption in (
        "Cost per day",
        "vCPU-hours per day",
        "RAM GiB-hours per day",
        "Storage GiB-hours per day",
    ):
        assert f"<summary>{caption} as a table</summary>" in page
    assert page.count('data-chart="') == 4
    assert page.count("<table") == 5  # four graphs' tables and the cost per server
    assert "a stopped server still pays for its disk" in page
    assert f'href="{instance.get_absolute_url()}">web-1</a>' in page
    assert 'href="/o/acme/p/web-shop/usage.csv?period=7d"' in page
    assert '<script src="/static/vendor/uplot/uPlot.iife.min.js" defer></script>' in page
    assert 'aria-current="true">7 days</a>' in page


def test_org_page_adds_up_its_projects(org, project, owner, client_as, catalog):
    other = ProjectFactory(organization=org, name="Data lab", slug="data-lab")
    now = timezone.now()
    start = floor_day(now) - timedelta(days=3)
    UsageSegment.objects.bulk_create(
        [
            _segment(project, catalog["fra1-a"], start=start, end=start + timedelta(hours=10), price="1"),
            _segment(other, catalog["fra1-a"], start=start, end=start + timedelta(hours=5), price="1"),
        ]
    )
    _roll_up(start, now)
    client = client_as(owner)
    body = client.get(_org_url("org_usage_json", org, "?period=7d")).json()
    assert body["totals"]["cost"] == "15.00"
    page = client.get(_org_url("org_usage", org, "?period=7d")).content.decode()
    by_project = page[page.index("<h2>Cost by project</h2>") :]
    assert by_project.index("Web shop") < by_project.index("Data lab")  # the dearer first
    assert "/o/acme/p/data-lab/usage/?period=7d" in page
    rows = list(
        csv.reader(io.StringIO(client.get(_org_url("org_usage_csv", org, "?period=7d")).content.decode()))
    )
    assert sum(Decimal(r[2]) for r in rows[1:]) == Decimal("15.00")


def test_an_empty_project_says_so(project, owner, client_as):
    page = client_as(owner).get(_url("project_usage", project)).content.decode()
    assert "Nothing was used in this period" in page
    assert "No server, volume or snapshot cost anything in this period." in page


# --- who may read ------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "admin", "member", "viewer"])
def test_every_member_may_read(who, users, project, client_as):
    client = client_as(users[who])
    org = project.organization
    for url in (
        _url("project_usage", project),
        _url("project_usage_json", project),
        _url("project_usage_csv", project),
        _org_url("org_usage", org),
        _org_url("org_usage_json", org),
        _org_url("org_usage_csv", org),
    ):
        assert client.get(url).status_code == 200, url


def test_outsider_gets_404(project, outsider, client_as):
    client = client_as(outsider)
    for url in (
        _url("project_usage", project),
        _url("project_usage_json", project),
        _url("project_usage_csv", project),
        _org_url("org_usage", project.organization),
        _org_url("org_usage_json", project.organization),
    ):
        assert client.get(url).status_code == 404, url


def test_usage_is_read_only(project, owner, client_as):
    assert client_as(owner).post(_url("project_usage", project)).status_code == 405


def test_sidebar_links_to_usage(project, viewer, client_as):
    page = client_as(viewer).get(_url("project_usage", project)).content.decode()
    assert 'href="/o/acme/p/web-shop/usage/" aria-label="Project usage" aria-current="page">Usage</a>' in page
    assert 'href="/o/acme/usage/" aria-label="Organization usage">Usage</a>' in page


# --- queries do not grow with servers ----------------------------------------------------------


def _month_of_history(project, zone, count: int, now: datetime) -> None:
    """`count` servers running for 30 days (compute + disk), rolled up by day, built in bulk."""
    start = floor_day(now) - timedelta(days=30)
    segments = []
    for i in range(count):
        server = uuid.uuid4()
        begin = start + timedelta(hours=i % 24)
        segments.append(_segment(project, zone, start=begin, resource_id=server, name=f"s-{i}"))
        segments.append(_disk(project, zone, start=begin, resource_id=server))
    UsageSegment.objects.bulk_create(segments, batch_size=1000)
    _roll_up(start, now)


def test_graph_endpoint_runs_the_same_queries_for_1_and_500_servers(project, owner, client_as, catalog):
    client = client_as(owner)
    now = timezone.now()
    other = ProjectFactory(organization=project.organization, name="Big", slug="big")
    _month_of_history(project, catalog["fra1-a"], 1, now)
    _month_of_history(other, catalog["fra1-a"], 500, now)
    counts = {}
    for name, target in (("one", project), ("many", other)):
        for period in ("30d", "12m"):
            client.get(_url("project_usage_json", target, f"?period={period}"))  # warm the session
            with CaptureQueriesContext(connection) as queries:
                response = client.get(_url("project_usage_json", target, f"?period={period}"))
            assert response.status_code == 200
            counts[name, period] = len(queries)
    body = response.json()
    assert Decimal(body["vcpu_hours"][-2]) == 500 * 24  # yesterday: 500 servers all day
    print(f"usage.json queries: {counts}")
    assert counts["one", "30d"] == counts["many", "30d"] == counts["one", "12m"] == counts["many", "12m"]
    assert counts["one", "30d"] <= 12  # session and user (7), membership, project, rollups, today


def test_usage_page_runs_the_same_queries_for_1_and_500_servers(project, owner, client_as, catalog):
    client = client_as(owner)
    now = timezone.now()
    other = ProjectFactory(organization=project.organization, name="Big", slug="big")
    _month_of_history(project, catalog["fra1-a"], 1, now)
    _month_of_history(other, catalog["fra1-a"], 500, now)
    counts = []
    for target in (project, other):
        client.get(_url("project_usage", target))
        with CaptureQueriesContext(connection) as queries:
            assert client.get(_url("project_usage", target)).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


# --- the server's own panel --------------------------------------------------------------------


def test_cost_so_far_this_month_for_one_server(project, catalog):
    zone = catalog["fra1-a"]
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    server, neighbour = uuid.uuid4(), uuid.uuid4()
    february = datetime(2026, 2, 20, tzinfo=UTC)
    UsageSegment.objects.bulk_create(
        [
            # Ran from February into March: only March counts (240 h from 1 March 00:00).
            _segment(
                project, zone, start=february, end=datetime(2026, 3, 11, tzinfo=UTC), resource_id=server
            ),
            _disk(project, zone, start=february, resource_id=server),
            _segment(project, zone, start=datetime(2026, 3, 2, tzinfo=UTC), resource_id=neighbour, price="9"),
        ]
    )
    usage = resource_month_to_date(resource_id=server, now=now)
    assert usage.since == datetime(2026, 3, 1, tzinfo=UTC)
    assert usage.running_hours == 240
    assert usage.cost_by_meter["compute"] == Decimal("2.64")  # 240 h x 0.0110
    assert usage.cost_by_meter["disk"].quantize(Decimal("0.0001")) == Decimal(
        "2.3838"
    )  # 348 h x 50 x 0.000137
    assert usage.cost.quantize(Decimal("0.01")) == Decimal("5.02")


def test_detail_page_shows_uptime_and_cost_this_month(project, owner, client_as, catalog, monkeypatch):
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: now)
    instance = InstanceFactory(project=project, name="web-1", running_since=now - timedelta(days=2, hours=3))
    march, zone = datetime(2026, 3, 1, tzinfo=UTC), catalog["fra1-a"]
    UsageSegment.objects.bulk_create(
        [
            _segment(project, zone, start=march, resource_id=instance.pk),
            _disk(project, zone, start=march, resource_id=instance.pk),
        ]
    )
    page = client_as(owner).get(instance.get_absolute_url()).content.decode()
    panel = page[page.index('class="card instance-usage"') :]
    assert "2\xa0days, 3\xa0hours" in panel
    assert "<strong>348.0 h</strong>" in panel  # 14 days 12 hours
    assert "<strong>6.21 EUR</strong>" in panel  # 348 x 0.0110 + 348 x 50 x 0.000137 = 3.828 + 2.3838
    assert "still pays for its disk: 50 GiB costs 5.00 EUR a month" in panel
    assert f'data-metrics-src="/o/acme/p/web-shop/servers/{instance.pk}/metrics.json"' in panel


def test_the_usage_panel_is_in_the_polled_region_and_the_viewer_sees_it(project, viewer, client_as):
    instance = InstanceFactory(project=project, status="provisioning")
    client = client_as(viewer)
    partial = client.get(instance.get_absolute_url(), headers={"HX-Request": "true"}).content.decode()
    assert "Cost this month" in partial
    assert "Not running" in partial
