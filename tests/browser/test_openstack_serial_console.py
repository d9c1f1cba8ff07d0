"""The serial console of a server in an OpenStack zone, in a real browser: the server page's button
opens xterm.js on the portal's websocket (uvicorn, in a process of its own), which opens Nova's
serial proxy (the fake cloud's, on 127.0.0.1); typed lines reach the server's serial line and its
answers show on screen. At 1366 and 390 px (docs/screenshots/71-console-openstack*.png)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.compute.models import ConsoleSession
from portal.tenancy.access import project_access
from portal.tenancy.models import Role
from tests.backends.fake_openstack import fake_openstack  # noqa: F401 — the fixture
from tests.backends.openstack_zone import openstack_server, openstack_zone  # noqa: F401 — the fixture
from tests.browser.conftest import sign_in, type_in_console
from tests.browser.test_serial_console import wait_for_screen
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser


def _connect(page, name: str) -> None:
    page.get_by_role("button", name="Open serial console").click()
    page.locator(".serial-console-state.is-live").wait_for()
    assert page.locator(".serial-console-state").inner_text() == f"Connected to {name}"
    # console.js wakes the line with an Enter once connected: a serial line shows nothing until asked.


def _log_in(page, name: str) -> None:
    _connect(page, name)
    wait_for_screen(page, f"{name} login:")
    type_in_console(page, "dana\r")
    wait_for_screen(page, "Password:")
    type_in_console(page, "secret\r")
    wait_for_screen(page, f"dana@{name}:~$")


# openstack_zone first: it sets the environment uvicorn's process reads the cloud's address from.
def test_typing_into_the_serial_console_of_an_openstack_server(
    openstack_zone,  # noqa: F811 — the fixture imported above
    fake_openstack,  # noqa: F811
    asgi_server,
    new_page,
    shoot,
):
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com", name="Dana Smith")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")
    server = openstack_server(project_access(owner, org.slug, project.slug), openstack_zone, "os-shop-1")

    page = new_page(1366, 900)
    sign_in(page, asgi_server, owner)
    page.goto(asgi_server + reverse("compute:instance_detail", args=[org.slug, project.slug, server.pk]))
    _log_in(page, "os-shop-1")
    type_in_console(page, "uname -a\r")
    wait_for_screen(page, "GNU/Linux")
    type_in_console(page, "echo hello from nova\r")
    screen = wait_for_screen(page, "\nhello from nova\n")
    assert "echo hello from nova" in screen
    assert not page.csp_violations
    shoot(page, "71-console-openstack")
    page.locator(".console-card").get_by_role("button", name="Disconnect").click()
    page.locator(".serial-console-state", has_text="Disconnected.").wait_for()

    phone = new_page(390, 844)
    sign_in(phone, asgi_server, owner)
    phone.goto(page.url)
    _connect(phone, "os-shop-1")
    wait_for_screen(phone, "dana@os-shop-1:~$")  # the same serial line: still logged in, as a tty stays
    type_in_console(phone, "hostname\r")
    wait_for_screen(phone, "\nos-shop-1\n")
    shoot(phone, "71-console-openstack-mobile")
    overflow = phone.evaluate("document.getElementById('main').scrollWidth - innerWidth")
    assert overflow <= 0, f"the page is {overflow}px too wide at 390px"
    assert not phone.csp_violations
    phone.locator(".console-card").get_by_role("button", name="Disconnect").click()
    phone.locator(".serial-console-state", has_text="Disconnected.").wait_for()
    assert len(fake_openstack.compute.consoles.connections) == 2  # one proxy connection per session
    assert ConsoleSession.objects.filter(opened_at__isnull=False).count() == 2
