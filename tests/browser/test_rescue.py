"""Rescue mode in Chromium on the simulated cloud: the customer asks for rescue on the server page
(it asks once more, saying what happens), sees "Entering rescue mode", then the "In rescue mode"
banner with how to repair and leave and the console link, and leaves rescue: the server runs again.

Walked at 1366 px and at 390 px (no step may scroll sideways); shots docs/screenshots/110-112,
the phone's with a -mobile suffix. The operations are stepped from the test, as a worker would."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.models import Instance, Operation
from portal.tenancy.access import project_access
from tests.browser.pages import fitting_shots, owner_page  # noqa: F401 (a fixture)
from tests.steps import drive

pytestmark = pytest.mark.browser


def _running_server(page) -> Instance:
    project, owner = page.project, page.owner
    access = project_access(owner, project.organization.slug, project.slug)
    batch = services.instance_launch(
        access=access,
        req=services.LaunchRequest(
            name="web-shop-1",
            count=1,
            zone=Zone.objects.get(code="fra1-a"),
            flavor=Flavor.objects.get(code="s-1vcpu-2gb"),
            image=Image.objects.get(name="Debian 13"),
            root_disk_gib=50,
        ),
    )
    drive(Operation.objects.get(instance__batch=batch))
    return Instance.objects.get(batch=batch)


@pytest.mark.parametrize(("width", "suffix"), [(1366, ""), (390, "-mobile")], ids=["laptop", "phone"])
def test_rescue_a_server_and_leave_rescue(owner_page, knobs, shoot, width, suffix):  # noqa: F811
    page, take = owner_page, fitting_shots(shoot, suffix)
    page.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
    server = _running_server(page)
    org, project = page.project.organization, page.project
    page.goto(page.base + reverse("compute:instance_detail", args=[org.slug, project.slug, server.pk]))

    page.locator("summary", has_text="Rescue…").click()
    panel = page.locator("details.rescue .confirm-panel")
    assert "Its own disk is attached, unchanged, as a second disk" in panel.inner_text()
    panel.scroll_into_view_if_needed()
    take(page, "110-rescue-ask")
    panel.get_by_role("button", name="Rescue web-shop-1").click()
    page.get_by_text("Entering rescue mode.").wait_for()
    assert Instance.objects.get(pk=server.pk).status == "rescuing"

    drive(Operation.objects.get(instance=server, action="rescue"))
    banner = page.locator("[data-rescue-banner]")
    banner.wait_for()  # the page follows the operation (htmx) and shows the banner without a reload
    text = banner.inner_text()
    assert "In rescue mode." in text and "/dev/vdb" in text and "leave rescue mode" in text
    assert page.locator("h1 .status").inner_text() == "In rescue mode"
    assert (
        banner.get_by_role("link", name="serial console below").get_attribute("href")
        == "#console-card-rescue"
    )
    assert page.get_by_role("button", name="Open serial console").is_visible()
    take(page, "111-rescue-banner")

    banner.get_by_role("button", name="Leave rescue mode").click()
    page.get_by_text("Leaving rescue mode.").first.wait_for()
    drive(Operation.objects.get(instance=server, action="unrescue"))
    page.locator("h1 .status", has_text="Running").wait_for()
    assert page.locator("[data-rescue-banner]").count() == 0
    assert Instance.objects.get(pk=server.pk).status == "running"
    take(page, "112-rescue-left")
