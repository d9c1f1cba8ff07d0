"""Launch two servers through the wizard in Chromium, with a real Celery worker, and watch the list
reach "Running" without reloading the page; then stop and start one from its page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.demo import load_demo_catalog
from portal.compute.models import Instance
from portal.tenancy.models import Role
from tests.browser.wizard import choose, choose_zone, launch_from_wizard
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def _sign_in(page, live_server, email):
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()


def test_a_card_clicked_while_the_summary_refreshes_stays_chosen(live_server, new_page):
    """The summary refreshes half a second after typing; a card pressed at that moment must still
    be chosen when the button comes up (the cards used to be redrawn under the pointer)."""
    load_demo_catalog()
    org = OrganizationFactory(slug="acme")
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    project = ProjectFactory(organization=org, slug="web-shop")

    page = new_page()
    _sign_in(page, live_server, owner.email)
    page.goto(live_server.url + reverse("compute:launch", args=[org.slug, project.slug]))
    choose(page, page.locator("#region-fra1 input[type=radio]").first, "Debian 13", "Starter 2")
    summary = page.locator("#launch-summary")
    page.fill("input[name=name]", "web")
    card = page.locator("#section-image").get_by_text("Rocky Linux 9", exact=True)
    card.scroll_into_view_if_needed()
    card = card.bounding_box()
    page.mouse.move(card["x"] + card["width"] / 2, card["y"] + card["height"] / 2)
    page.mouse.down()
    # Typed while the button is held (set in place: filling would scroll the card away), the
    # count is checked half a second later, and the answer lands before the button comes up.
    page.locator("input[name=count]").evaluate("e => { e.value = '3'; e.dispatchEvent(new Event('input')); }")
    summary.get_by_text("web-1, web-2, web-3").wait_for()
    page.mouse.up()
    summary.get_by_text("Rocky Linux 9", exact=True).wait_for()
    assert "Rocky Linux 9" in page.locator("#section-image input:checked").evaluate(
        "e => e.closest('label').innerText"
    )

    # Another zone redraws the cards with the choice kept; a card picked after that is the only
    # one highlighted (the redrawn card used to keep a highlight of its own).
    choose_zone(page, page.locator("#region-fra1 input[type=radio]").nth(1))  # fra1-b
    assert page.locator("#section-image input[name=image]:checked").count() == 1
    page.locator("#section-image").get_by_text("Debian 13", exact=True).click()
    summary.get_by_text("Debian 13", exact=True).wait_for()
    highlighted = page.locator("#section-image .choice-card").evaluate_all(
        "cards => cards.filter(c => getComputedStyle(c).boxShadow !== 'none').map(c => c.innerText)"
    )
    assert len(highlighted) == 1 and "Debian 13" in highlighted[0]


def test_launch_two_and_watch_them_come_up(celery_worker_process, live_server, new_page, shoot):
    load_demo_catalog()
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com", name="Dana Smith")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")

    page = new_page()
    _sign_in(page, live_server, owner.email)
    page.goto(live_server.url + reverse("compute:launch", args=[org.slug, project.slug]))
    page.fill("input[name=name]", "web")
    page.fill("input[name=count]", "2")
    choose(page, page.locator("#region-fra1 input[type=radio]").first, "Debian 13", "Starter 2")
    summary = page.locator("#launch-summary")
    summary.get_by_text("26.06 EUR").wait_for()  # the htmx summary: 2 x (0.0110 + 50 x 0.000137) x 730
    assert "web-1, web-2" in summary.inner_text()
    shoot(page, "13-launch-wizard")

    launch_from_wizard(page, "Launch 2 servers")
    assert page.locator(".status-running").count() < 2  # still coming up when the list first shows
    page.evaluate("window.__sameDocument = true")
    page.locator(".status-running").nth(1).wait_for(timeout=45_000)
    assert page.evaluate("window.__sameDocument === true")  # no reload happened
    assert Instance.objects.filter(project=project, status="running").count() == 2
    shoot(page, "14-server-list")

    page.get_by_role("link", name="web-1").click()
    page.locator("summary", has_text="Stop").click()  # asks once more: it ends running programs
    page.get_by_role("button", name="Stop web-1").click()
    page.locator("h1 .status-stopped").wait_for(timeout=30_000)
    page.get_by_role("button", name="Start").click()
    page.locator("h1 .status-running").wait_for(timeout=30_000)
    assert "ssh debian@" in page.locator("#instance-live").inner_text()
    shoot(page, "15-server-detail")
    assert not page.csp_violations
