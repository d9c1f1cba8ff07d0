"""The portal on a phone (390 px wide): no page scrolls sideways, the top bar fits, and the menu
tells the project's sections from the organization's."""

from __future__ import annotations

from itertools import pairwise

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.catalog.demo import load_demo_catalog
from portal.metering.demo import load_demo_usage
from portal.statements.selectors import first_of_month
from portal.tenancy.models import Role
from tests.factories import (
    PASSWORD,
    InstanceFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}

# The elements wider than the page, for the failure message.
OVERFLOWING = """() => {
    const width = document.documentElement.clientWidth;
    const scrolled = (el) => {
        for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
            if (["auto", "scroll", "hidden"].includes(getComputedStyle(up).overflowX)) return true;
        }
        return false;
    };
    return [...document.querySelectorAll("body *")]
        .filter(el => el.getBoundingClientRect().right > width + 1 && !scrolled(el))
        .slice(0, 6)
        .map(el => el.tagName.toLowerCase() + "." + String(el.className).split(" ").join(".") + " " + Math.round(el.getBoundingClientRect().right));
}"""


def _pages(org, project, instance) -> list[str]:
    o, p = org.slug, project.slug
    month = first_of_month(timezone.now())
    return [
        reverse("tenancy:org_dashboard", args=[o]),
        reverse("tenancy:project_dashboard", args=[o, p]),
        reverse("compute:instance_list", args=[o, p]),
        reverse("compute:launch", args=[o, p]),
        reverse("compute:instance_detail", args=[o, p, instance.pk]),
        reverse("compute:volumes", args=[o, p]),
        reverse("compute:ssh_keys", args=[o, p]),
        reverse("compute:firewalls", args=[o, p]),
        reverse("residency:project_residency", args=[o, p]),
        reverse("residency:org_residency", args=[o]),
        reverse("metering:project_usage", args=[o, p]),
        reverse("metering:org_usage", args=[o]),
        reverse("budgets:project_budget", args=[o, p]),
        reverse("budgets:project_leases", args=[o, p]),
        reverse("tenancy:project_settings", args=[o, p]),
        reverse("tenancy:org_settings", args=[o]),
        reverse("tenancy:members", args=[o]),
        reverse("tenancy:audit_log", args=[o]),
        reverse("api:tokens", args=[o]),
        reverse("statements:statement_list", args=[o]),
        reverse("statements:statement_detail", args=[o, month.year, month.month]),
        reverse("statements:org_attestation", args=[o]),
        reverse("statements:project_attestation", args=[o, p]),
        reverse("profile"),
        reverse("account_email"),
        reverse("tenancy:project_create", args=[o]),
    ]


@pytest.fixture
def world(db):
    load_demo_catalog()
    org = OrganizationFactory(name="Acme Research and Development Laboratories", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana.smith-longname@example.com")
    ).user
    project = ProjectFactory(organization=org, name="Customer-facing web shop", slug="web-shop")
    load_demo_usage(project)
    instance = InstanceFactory(project=project, name="web-frontend-production-1")
    return org, owner, project, instance


def _sign_in(page, live_server, user) -> None:
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: "/accounts/login" not in url)


def test_no_page_scrolls_sideways_on_a_phone(live_server, browser, world):
    org, owner, project, instance = world
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(15_000)
    for url in (reverse("home"), reverse("account_login"), reverse("account_signup")):
        page.goto(live_server.url + url)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], (url, page.evaluate(OVERFLOWING))
    _sign_in(page, live_server, owner)

    too_wide = {}
    for url in _pages(org, project, instance):
        page.goto(live_server.url + url)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide[url] = (width, page.evaluate(OVERFLOWING))
    context.close()
    assert not too_wide, too_wide


def test_the_top_bar_fits_and_its_menus_stay_on_screen(live_server, browser, world):
    org, owner, project, _ = world
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    _sign_in(page, live_server, owner)
    page.goto(live_server.url + reverse("tenancy:project_dashboard", args=[org.slug, project.slug]))

    bar = page.locator(".topbar").bounding_box()
    assert bar["height"] <= 60
    for selector in (".brand", ".switcher >> nth=0", ".switcher >> nth=1", ".usermenu"):
        box = page.locator(selector).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], selector
        assert box["y"] >= bar["y"] and box["y"] + box["height"] <= bar["y"] + bar["height"], selector
    # Top-bar pieces do not overlap one another.
    boxes = [page.locator(s).bounding_box() for s in (".brand", ".switchers", ".usermenu")]
    for left, right in pairwise(boxes):
        assert left["x"] + left["width"] <= right["x"] + 1
    for summary in (".switcher >> nth=1", ".usermenu"):
        page.locator(summary).locator("summary").click()
        panel = page.locator(summary).locator(".menu-panel").bounding_box()
        assert panel["x"] >= 0 and panel["x"] + panel["width"] <= PHONE["width"], summary
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.locator(summary).locator("summary").click()
    context.close()


def test_the_menu_says_which_overview_is_which(live_server, browser, world):
    org, owner, project, _ = world
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    _sign_in(page, live_server, owner)
    page.goto(live_server.url + reverse("tenancy:project_dashboard", args=[org.slug, project.slug]))

    groups = page.locator(".sidebar-group")
    assert groups.count() == 2
    for group, heading in zip(groups.all(), ["Project", "Organization"], strict=True):
        label = group.locator(".sidebar-heading")
        assert label.is_visible() and label.inner_text().strip().lower() == heading.lower()
        assert group.get_by_role("link", name="Overview").count() == 1
    # Each link's accessible name says whose it is where the same word appears twice.
    names = [link.get_attribute("aria-label") or link.inner_text() for link in page.locator(".sidebar a").all()]
    assert len(names) == len(set(names)), names
    context.close()
