"""The serial console of a real VM in the browser: a server launched from the wizard in the
libvirt development zone boots under QEMU (libvirt's embedded driver, a real Celery worker), its
page opens xterm.js on the portal's websocket (uvicorn), and the guest's shell answers what is
typed. Skips (or fails under REQUIRE_SERVICES=1) without libvirt."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from portal.catalog.models import Zone
from portal.compute.models import ConsoleSession
from portal.core.management.commands.libvirt_dev_zone import IMAGE
from portal.tenancy.models import Role
from tests.backends.libvirt_env import MARKER
from tests.browser.conftest import sign_in, type_in_console
from tests.browser.test_serial_console import wait_for_screen
from tests.browser.wizard import choose, launch_from_wizard
from tests.compute.test_libvirt_dev_zone import ZONE, dev_var, dev_zone
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker]

__all__ = ["dev_var"]  # the fixture


def test_typing_into_the_serial_console_of_a_real_vm(dev_var, celery_worker_process, asgi_server, new_page):
    dev_zone()
    zone = Zone.objects.get(code=ZONE)
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com")).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")

    page = new_page()
    sign_in(page, asgi_server, owner)
    page.goto(asgi_server + reverse("compute:launch", args=[org.slug, project.slug]))
    page.fill("input[name=name]", "shell-vm")
    choose(page, page.locator(f"input[name=zone][value='{zone.pk}']"), IMAGE, "Starter 1")
    launch_from_wizard(page, "Launch server")
    page.locator(".status-running").first.wait_for(timeout=40_000)
    page.get_by_role("link", name="shell-vm").click()
    page.locator("h1 .status-running").wait_for()
    # The guest prints its marker, then starts its shell on the serial line.
    page.locator("#console", has_text=MARKER).wait_for(timeout=30_000)

    page.get_by_role("button", name="Open serial console").click()
    page.locator(".serial-console-state.is-live").wait_for(timeout=30_000)
    wait_for_screen(page, "shell-vm:/# ", timeout=30)
    type_in_console(page, "echo $((6*7))\r")
    screen = wait_for_screen(page, "\n42\n", timeout=30)
    assert "echo $((6*7))" in screen
    assert not page.csp_violations

    page.locator(".console-card").get_by_role("button", name="Disconnect").click()
    page.locator(".serial-console-state", has_text="Disconnected.").wait_for()
    # The page says "Disconnected." as soon as its socket is closed; the server records the close
    # when its consumer hears of it, a moment later.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not ConsoleSession.objects.filter(closed_at__isnull=False).exists():
        time.sleep(0.1)
    session = ConsoleSession.objects.get()
    assert session.closed_at is not None and session.user == owner
