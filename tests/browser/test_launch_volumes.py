"""Volumes chosen in the launch wizard, in Chromium against a live server with a real Celery worker
on the simulated cloud: two new volumes and an existing one, priced in the summary as they are
typed → launched → the server's page lists the three attached, with devices and mount lines.

Walked twice: on a laptop (1366 px) and on a phone (390 px, where no step may scroll sideways).
Shots 66 and 67 in docs/screenshots/, the phone's with a -mobile suffix.
"""

from __future__ import annotations

import re
import time

import pytest
from django.urls import reverse

from portal.catalog.demo import load_demo_catalog
from portal.catalog.models import Zone
from portal.compute.models import Instance, Volume
from portal.compute.services import volumes as volume_services
from portal.tenancy.access import project_access
from portal.tenancy.models import Role
from tests.browser.pages import fitting_shots
from tests.browser.wizard import choose, launch_from_wizard
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.mark.parametrize(("width", "suffix"), [(1366, ""), (390, "-mobile")], ids=["laptop", "phone"])
def test_launch_with_volumes(width, suffix, celery_worker_process, live_server, new_page, shoot):
    load_demo_catalog()
    shoot = fitting_shots(shoot, suffix)
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com", name="Dana Smith")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")
    fra = Zone.objects.get(code="fra1-a")
    access = project_access(owner, org.slug, project.slug)
    op = volume_services.volume_create(access=access, name="shop-archive", zone=fra, size_gib=50)
    for _ in range(150):  # made by the worker
        if Volume.objects.filter(pk=op.volume_id, status="available").exists():
            break
        time.sleep(0.2)

    page = new_page(width=width, height=860 if width > 600 else 844)
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url("**/o/**")
    page.goto(live_server.url + reverse("compute:launch", args=[org.slug, project.slug]))

    # --- The wizard: two new volumes and the archive, priced as they are typed ------------------
    page.fill("input[name=name]", "shop-app")
    choose(page, page.locator(f"input[name=zone][value='{fra.pk}']"), "Debian 13", "Starter 2")
    volumes = page.locator("#section-volumes")
    volumes.get_by_text("shop-archive").wait_for()
    rows = volumes.locator(".volume-row")
    rows.nth(0).locator("input[name=new_volumes_name]").fill("data")
    rows.nth(0).locator("input[name=new_volumes_size_gib]").fill("100")
    summary = page.locator("#launch-summary")
    summary.get_by_text(re.compile(r"New volumes: 100 GiB, 10\.\d\d EUR a month")).wait_for()
    volumes.get_by_role("button", name="Add another volume").click()
    rows.nth(1).locator("input[name=new_volumes_name]").fill("logs")
    rows.nth(1).locator("input[name=new_volumes_size_gib]").fill("10")
    summary.get_by_text(re.compile(r"New volumes: 110 GiB")).wait_for()
    volumes.get_by_label(re.compile("shop-archive")).check()
    summary.get_by_text("existing (billed already)").wait_for()
    assert "Volume storage: 160 GiB of" in summary.inner_text()
    shoot(page, "66-launch-volumes")

    launch_from_wizard(page, "Launch server")
    page.locator("tr", has_text="shop-app").locator(".status-running").wait_for(timeout=45_000)
    server = Instance.objects.get(project=project, name="shop-app")

    # --- The server's page: the three attached, each with its device and how to mount it --------
    page.goto(live_server.url + server.get_absolute_url())
    card = page.locator("#volumes")
    for name in ("shop-app-data", "shop-app-logs", "shop-archive"):
        card.locator("li", has_text=name).locator(".status-vol-in_use").wait_for(timeout=45_000)
    attached = Volume.objects.filter(attached_to=server)
    assert sorted(attached.values_list("device", flat=True)) == ["/dev/vdb", "/dev/vdc", "/dev/vdd"]
    page.locator(".timeline").get_by_text("Attach volume shop-archive").wait_for()
    shoot(page, "67-server-launch-volumes")
    assert not page.csp_violations
