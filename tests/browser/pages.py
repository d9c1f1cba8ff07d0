"""What the server and firewall page tests share: an owner signed in, and a look at a page at a
desktop and a phone width (shots into the test's tmp_path; on the phone the page's content must
not be wider than the screen)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.demo import load_demo_catalog
from portal.tenancy.models import Role
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

WIDTHS = {"desktop": (1366, 900), "phone": (390, 844)}


@pytest.fixture
def owner_page(live_server, new_page):
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
    page.wait_for_url("**/o/**")
    page.project, page.owner, page.base = project, owner, live_server.url
    return page


def look(page, tmp_path, name: str, focus: str = "#main") -> None:
    """Shoot the page, and the part of it that matters, at both widths; back to the desktop width."""
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=tmp_path / f"{name}-{width}.png", full_page=True, caret="initial")
        page.locator(focus).first.screenshot(path=tmp_path / f"{name}-{width}-part.png", caret="initial")
        if label == "phone":
            # The page's own content (the header is the frame's, shared by every page).
            overflow = page.evaluate(
                "(() => { const m = document.getElementById('main');"
                " return Math.max(m.scrollWidth - m.clientWidth, m.getBoundingClientRect().right - innerWidth); })()"
            )
            assert overflow <= 0, f"{name} is {overflow}px too wide at {width}px"
    page.set_viewport_size({"width": 1366, "height": 900})
