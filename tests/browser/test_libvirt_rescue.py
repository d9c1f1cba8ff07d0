"""Rescue mode of a real VM in the browser: a server launched from the wizard in the libvirt
development zone boots under QEMU (libvirt's embedded driver, a real Celery worker); the customer
rescues it from its page, sees "In rescue mode" with the rescue system's console output (its own
disk at /dev/vdb), leaves rescue and sees it running its own system again.

Shots docs/screenshots/114-rescue-libvirt.png at 1366 px and -mobile at 390 px, both of the rescue
banner (one VM: the phone's picture is the same page, narrower). Skips (or fails under
REQUIRE_SERVICES=1) without libvirt."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.models import Zone
from portal.compute.backends.libvirt_guest import RESCUE_MARKER
from portal.compute.models import Instance
from portal.core.management.commands.libvirt_dev_zone import IMAGE
from portal.tenancy.models import Role
from tests.backends.libvirt_env import MARKER
from tests.browser.conftest import sign_in
from tests.browser.pages import fitting_shots
from tests.browser.wizard import choose, launch_from_wizard
from tests.compute.test_libvirt_dev_zone import ZONE, dev_var, dev_zone
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker]

__all__ = ["dev_var"]  # the fixture


def test_rescue_a_real_vm_from_its_page_and_leave_rescue(
    dev_var, celery_worker_process, asgi_server, new_page, shoot
):
    dev_zone()
    zone = Zone.objects.get(code=ZONE)
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")

    page = new_page(1366, 900)
    sign_in(page, asgi_server, owner)
    page.goto(asgi_server + reverse("compute:launch", args=[org.slug, project.slug]))
    page.fill("input[name=name]", "sick-vm")
    choose(page, page.locator(f"input[name=zone][value='{zone.pk}']"), IMAGE, "Starter 1")
    launch_from_wizard(page, "Launch server")
    page.locator(".status-running").first.wait_for(timeout=40_000)
    page.get_by_role("link", name="sick-vm").click()
    page.locator("h1 .status-running").wait_for()
    page.locator("#console", has_text=MARKER).wait_for(timeout=30_000)

    page.locator("summary", has_text="Rescue…").click()
    panel = page.locator("details.rescue .confirm-panel")
    assert "Its own disk is attached, unchanged, as a second disk" in panel.inner_text()
    panel.get_by_role("button", name="Rescue sick-vm").click()
    page.get_by_text("Entering rescue mode.").wait_for()

    # The worker powers the VM off, boots the rescue initramfs with its disk as vdb, and the page
    # follows (htmx) to the banner.
    banner = page.locator("[data-rescue-banner]")
    banner.wait_for(timeout=90_000)
    assert page.locator("h1 .status").inner_text() == "In rescue mode"
    text = banner.inner_text()
    assert "/dev/vdb" in text and "leave rescue mode" in text
    if not page.locator("#console", has_text=RESCUE_MARKER).count():
        page.reload()  # the console output shown is the one read when the page was drawn
    page.locator("#console", has_text=f"{RESCUE_MARKER} sick-vm disks: /dev/vda /dev/vdb").wait_for(
        timeout=30_000
    )
    assert Instance.objects.get(name="sick-vm").status == "rescue"
    assert page.get_by_role("button", name="Open serial console").is_visible()
    for width, height, suffix in ((1366, 900, ""), (390, 844, "-mobile")):
        page.set_viewport_size({"width": width, "height": height})
        # The console box shows the log's tail from its top: scrolled to its end, as a customer
        # reading what the rescue system printed would.
        page.locator("#console pre").evaluate("box => box.scrollTop = box.scrollHeight")
        fitting_shots(shoot, suffix)(page, "114-rescue-libvirt")
    page.set_viewport_size({"width": 1366, "height": 900})

    banner.get_by_role("button", name="Leave rescue mode").click()
    page.get_by_text("Leaving rescue mode.").first.wait_for()
    page.locator("h1 .status", has_text="Running").wait_for(timeout=90_000)
    assert page.locator("[data-rescue-banner]").count() == 0
    assert Instance.objects.get(name="sick-vm").status == "running"
    assert not page.csp_violations
