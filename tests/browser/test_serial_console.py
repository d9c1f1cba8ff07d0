"""The serial console in a real browser: the server page's button opens xterm.js on the portal's
websocket (served by uvicorn, as in production), typed commands reach the server and its answers
show on screen; at 1366 and 390 px (docs/screenshots/70-console*.png)."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from portal.catalog.demo import load_demo_catalog
from portal.compute import services
from portal.compute.models import ConsoleSession, Instance, Operation
from portal.tenancy.access import project_access
from portal.tenancy.models import Role
from tests.browser.conftest import console_screen, sign_in, type_in_console
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory
from tests.steps import drive

pytestmark = pytest.mark.browser


def wait_for_screen(page, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while text not in (screen := console_screen(page)):
        assert time.monotonic() < deadline, f"{text!r} not on screen: {screen}"
        time.sleep(0.1)
    return screen


def _running_server(owner, project, knobs) -> Instance:
    from portal.catalog.models import Flavor, Image, Zone

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


def test_typing_into_the_serial_console_of_a_simulated_server(asgi_server, new_page, knobs, shoot):
    load_demo_catalog()
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com", name="Dana Smith")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")
    server = _running_server(owner, project, knobs)

    page = new_page(1366, 900)
    sign_in(page, asgi_server, owner)
    page.goto(asgi_server + reverse("compute:instance_detail", args=[org.slug, project.slug, server.pk]))
    page.get_by_role("button", name="Open serial console").click()
    page.locator(".serial-console-state.is-live").wait_for()
    assert page.locator(".serial-console-state").inner_text() == "Connected to web-shop-1"
    wait_for_screen(page, "web-shop-1 login:")
    type_in_console(page, "dana\r")
    wait_for_screen(page, "Password:")
    type_in_console(page, "secret\r")
    wait_for_screen(page, "dana@web-shop-1:~$")
    type_in_console(page, "echo $((6*7))\r")
    screen = wait_for_screen(page, "\n42\n")
    type_in_console(page, "uname -a\r")
    wait_for_screen(page, "GNU/Linux")
    assert "echo $((6*7))" in screen
    assert not page.csp_violations
    shoot(page, "70-console")

    page.locator(".console-card").get_by_role("button", name="Disconnect").click()
    page.locator(".serial-console-state", has_text="Disconnected.").wait_for()
    url = page.url
    page.close()  # done with: a tab left open behind the phone's only competes with it for the CPU

    phone = new_page(390, 844)  # a second session, from a phone
    sign_in(phone, asgi_server, owner)
    phone.goto(url)
    phone.get_by_role("button", name="Open serial console").click()
    phone.locator(".serial-console-state.is-live").wait_for()
    wait_for_screen(phone, "web-shop-1 login:")
    type_in_console(phone, "dana\r")
    wait_for_screen(phone, "Password:")
    type_in_console(phone, "secret\r")
    wait_for_screen(phone, "dana@web-shop-1:~$")
    type_in_console(phone, "hostname\r")
    wait_for_screen(phone, "\nweb-shop-1\n")
    shoot(phone, "70-console-mobile")
    overflow = phone.evaluate("document.getElementById('main').scrollWidth - innerWidth")
    assert overflow <= 0, f"the page is {overflow}px too wide at 390px"
    assert not phone.csp_violations
    phone.locator(".console-card").get_by_role("button", name="Disconnect").click()
    phone.locator(".serial-console-state", has_text="Disconnected.").wait_for()
    # The page says "Disconnected." as soon as its socket is closed; the server records the close
    # when its consumer hears of it, a moment later.
    closed = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and closed < 2:
        closed = ConsoleSession.objects.filter(closed_at__isnull=False).count()
        time.sleep(0.1)
    assert closed == 2
    session = ConsoleSession.objects.order_by("created_at").first()
    assert session.close_reason == "Closed by the user." and session.duration_seconds is not None
