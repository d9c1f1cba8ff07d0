"""What the browser tests share: an owner signed in, a look at a page at a desktop and a phone
width (shots into the test's tmp_path; on the phone the page's content must not be wider than the
screen), and the journeys' shots into docs/screenshots/ that must fit the screen they are taken on."""

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


def fitting_shots(shoot, suffix: str = ""):
    """`shoot` (the name with `suffix`), then remove the empty style="" that Playwright's caret
    hiding leaves on every input. On a phone, each step must also fit the screen's width.

    Left in place, htmx copies that attribute onto the fields it swaps in later (the launch
    wizard's live summary), which the Content-Security-Policy reports as an inline style. For the
    same reason the picture waits for an htmx request in flight to land.
    """

    def take(page, name: str) -> None:
        for _ in range(200):  # polled from here: wait_for_function would need eval, which the CSP forbids
            if page.evaluate("!document.querySelector('.htmx-request')"):
                break
            page.wait_for_timeout(50)
        width = page.viewport_size["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} scrolls sideways"
        shoot(page, name + suffix)
        page.evaluate("document.querySelectorAll('[style=\"\"]').forEach(e => e.removeAttribute('style'))")

    return take
