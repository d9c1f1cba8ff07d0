"""The graphical console of a server in an OpenStack zone, in a real browser: the server page's
button asks the portal for the cloud's noVNC address and opens it in a new tab, where the cloud's
noVNC proxy (the fake's, on 127.0.0.1) serves the server's console page for its one-time token.
At 1366 and 390 px (docs/screenshots/92-console-openstack-vnc*.png)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.tenancy.access import project_access
from portal.tenancy.models import Role
from tests.backends.fake_openstack import fake_openstack  # noqa: F401 — the fixture
from tests.backends.openstack_zone import openstack_server, openstack_zone  # noqa: F401 — the fixture
from tests.browser.conftest import sign_in
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _open_graphical_console(page) -> object:
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Open graphical console").click()
    tab = opened.value  # opened blank on the click (no pop-up blocker), then sent to the address
    tab.wait_for_url(lambda address: "/vnc_lite.html" in address)
    tab.wait_for_load_state()
    return tab


def test_the_graphical_console_opens_the_clouds_novnc_page_in_a_new_tab(
    openstack_zone,  # noqa: F811 — the fixture imported above
    fake_openstack,  # noqa: F811
    live_server,
    new_page,
    shoot,
):
    openstack_zone.backend_settings = {
        **openstack_zone.backend_settings,
        "serial_console": False,
        "graphical_console": True,
    }
    openstack_zone.save(update_fields=["backend_settings"])
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com", name="Dana Smith")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")
    server = openstack_server(project_access(owner, org.slug, project.slug), openstack_zone, "os-vnc-1")
    url = live_server.url + reverse("compute:instance_detail", args=[org.slug, project.slug, server.pk])

    for width, height, name in (
        (1366, 900, "92-console-openstack-vnc"),
        (390, 844, "92-console-openstack-vnc-mobile"),
    ):
        page = new_page(width, height)
        sign_in(page, live_server.url, owner)
        page.goto(url)
        card = page.locator(".console-card")
        assert card.get_by_role("button", name="Open serial console").count() == 0  # not in this zone
        page.locator(".console-card").scroll_into_view_if_needed()
        shoot(page, name)
        tab = _open_graphical_console(page)
        assert tab.url.startswith(fake_openstack.compute.consoles.novnc_url + "/vnc_lite.html?path=")
        assert tab.title() == "os-vnc-1 - noVNC"
        assert tab.locator("#status").inner_text() == "Connected to os-vnc-1"
        assert tab.evaluate("window.opener") is None  # the cloud's page cannot reach back into ours
        assert not page.csp_violations
        if width == 390:
            overflow = page.evaluate("document.getElementById('main').scrollWidth - innerWidth")
            assert overflow <= 0, f"the page is {overflow}px too wide at 390px"

    assert AuditEvent.objects.filter(action=AuditAction.REMOTE_CONSOLE_ISSUED, actor=owner).count() == 2
