"""Usage graphs in Chromium: a month of history on the project usage page, and a server's cost and
CPU graph on its detail page, drawn under the Content-Security-Policy without a violation."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from portal.catalog.demo import load_demo_catalog
from portal.compute.models import SimulatedServer
from portal.metering.demo import load_demo_usage
from portal.metering.models import UsageSegment
from portal.metering.selectors import month_bounds
from portal.tenancy.models import Role
from tests.factories import (
    PASSWORD,
    InstanceFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _signed_in(new_page, live_server):
    load_demo_catalog()
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com", name="Dana Smith")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")
    page = new_page()
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: "/accounts/login" not in url)
    return page, project


def test_a_month_of_usage_is_drawn(live_server, new_page, shoot):
    page, project = _signed_in(new_page, live_server)
    load_demo_usage(project)  # past servers' segments over 30 days, rolled up by hour and day

    page.goto(
        live_server.url + reverse("metering:project_usage", args=[project.organization.slug, project.slug])
    )
    page.locator(".usage-charts[data-drawn]").wait_for()
    assert page.locator(".usage-chart canvas").count() == 4
    assert page.locator(".chart-problem").count() == 0
    legend = page.locator("[data-chart=cost] .u-legend").inner_text()
    assert "Compute" in legend and "Server disks" in legend and "Volumes" in legend
    assert "a stopped server still pays for its disk" in page.locator(".lead").inner_text()
    assert "db-1" in page.locator("table", has_text="Hours running").inner_text()

    page.get_by_role("link", name="7 days").click()
    page.locator(".usage-charts[data-drawn]").wait_for()
    assert "Last 7 days" in page.locator(".period-label").inner_text()
    page.get_by_role("link", name="30 days").click()
    page.locator(".usage-charts[data-drawn]").wait_for()
    shoot(page, "16-usage")
    assert not page.csp_violations


def test_a_server_page_shows_its_cost_and_cpu_graph(live_server, new_page, shoot):
    page, project = _signed_in(new_page, live_server)
    now = timezone.now()
    instance = InstanceFactory(
        project=project,
        name="web-1",
        backend_id="sim-usage0001",
        running_since=now - timedelta(days=3, hours=2),
    )
    SimulatedServer.objects.create(
        backend_id="sim-usage0001",
        idempotency_key=str(instance.pk),
        zone_code="fra1-a",
        name="web-1",
        vcpus=1,
        ram_gib=2,
        flavor_code="s-1vcpu-2gb",
        state="running",
    )
    SimulatedServer.objects.filter(backend_id="sim-usage0001").update(
        created_at=now - timedelta(days=3, hours=2)
    )
    since = max(month_bounds(now)[0], now - timedelta(days=3, hours=2))
    for meter, quantity, price, vcpus, ram in [
        ("compute", 1, instance.flavor.price_hourly, 1, 2),
        ("disk", 50, settings.PORTAL_DISK_PRICE_GIB_HOUR, 0, 0),
    ]:
        UsageSegment.objects.create(
            organization=project.organization,
            project=project,
            resource_type="instance",
            resource_id=instance.pk,
            resource_name="web-1",
            zone=instance.zone,
            meter=meter,
            quantity=Decimal(quantity),
            unit_price=price,
            vcpus=vcpus,
            ram_gib=ram,
            started_at=since,
        )

    page.goto(live_server.url + instance.get_absolute_url())
    page.locator(".cpu-panel[data-drawn] canvas").wait_for()
    panel = page.locator(".instance-usage")
    assert "3 days, 2 hours" in panel.locator(".usage-facts").inner_text().replace("\xa0", " ")
    assert "still pays for its disk" in panel.inner_text()
    assert "average" in page.locator("#cpu-summary").inner_text()
    page.get_by_role("button", name="7 days").click()
    page.locator("#cpu-summary", has_text="7 days").wait_for()
    page.get_by_role("button", name="24 hours").click()
    page.locator("#cpu-summary", has_text="24 hours").wait_for()
    panel.scroll_into_view_if_needed()
    shoot(page, "17-server-usage")
    assert not page.csp_violations
