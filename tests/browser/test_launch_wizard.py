"""The launch wizard in Chromium: every problem visible at once, a Launch button that is off while
the launch would be refused, no htmx errors in the console, long names that wrap."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.demo import load_demo_catalog
from portal.compute.models import FirewallRuleSet, Instance, SshKey
from portal.tenancy.models import Role
from tests.browser.wizard import choose
from tests.factories import PASSWORD, InstanceFactory, MembershipFactory, OrganizationFactory, ProjectFactory

pytestmark = [pytest.mark.browser]


@pytest.fixture
def wizard(live_server, new_page):
    """A signed-in owner on the launch wizard, and every console message the page logs."""
    load_demo_catalog()
    org = OrganizationFactory(slug="acme")
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    project = ProjectFactory(organization=org, slug="web-shop")
    page = new_page()
    page.console = []
    page.on("console", lambda m: page.console.append(m.text))
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.goto(live_server.url + reverse("compute:launch", args=[org.slug, project.slug]))
    page.project, page.owner = project, owner
    return page


def _set(page, selector: str, value: str) -> None:
    """Set a value as pasting would (the name box's maxlength does not stop a script or a proxy)."""
    page.locator(selector).evaluate(
        "(e, v) => { e.value = v; e.dispatchEvent(new Event('input', {bubbles: true})); "
        "e.dispatchEvent(new Event('change', {bubbles: true})); }",
        value,
    )


WRONG = {
    "name": "Use lower-case letters, digits and hyphens",
    "count": "Launch between 1 and 20 servers at a time.",
    "root_disk_gib": "The root disk must be at least 50 GiB",
    "user_data": "User data is 19.5 KiB; the limit is 16 KiB.",
}


def _fill_everything_wrong(page) -> None:
    choose(page, page.locator("#region-fra1 input[type=radio]").first, "Debian 13", "Starter 2")
    _set(page, "input[name=name]", "a" * 300)
    _set(page, "input[name=count]", "500")
    _set(page, "input[name=root_disk_gib]", "5")
    _set(page, "textarea[name=user_data]", "x" * 20_000)


def _assert_every_problem_shown(page) -> None:
    for field, message in WRONG.items():
        page.locator(f"#errors-{field}").get_by_text(message).wait_for()
    top = page.locator("#errors-__all__")
    top.get_by_text("4 things to fix before launching").wait_for()
    assert top.locator("li").count() == 4


def test_every_problem_is_visible_at_once_while_typing_and_after_submitting(wizard):
    page = wizard
    _fill_everything_wrong(page)
    _assert_every_problem_shown(page)  # the live check
    with page.expect_navigation() as navigation:
        page.locator("#launch-summary").get_by_role("button").click()
    assert navigation.value.status == 400  # the browser's own check did not stop it at the first field
    _assert_every_problem_shown(page)
    assert not Instance.objects.exists()
    assert not page.csp_violations


def test_over_quota_the_launch_button_is_off_and_says_why(wizard):
    page = wizard
    page.project.quota_instances = 10
    page.project.save()
    choose(page, page.locator("#region-fra1 input[type=radio]").first, "Debian 13", "Starter 2")
    page.fill("input[name=name]", "web")
    page.fill("input[name=count]", "16")
    summary = page.locator("#launch-summary")
    summary.get_by_text("Instances: 16 of 10 — over quota").wait_for()
    button = summary.get_by_role("button", name="Launch 16 servers")
    assert button.is_disabled()
    assert "Over the project's quota (Instances)" in summary.locator("#launch-blocked").inner_text()
    assert button.get_attribute("aria-describedby") == "launch-blocked"
    page.fill("input[name=count]", "2")
    summary.get_by_role("button", name="Launch 2 servers").wait_for()
    assert summary.get_by_role("button", name="Launch 2 servers").is_enabled()
    assert summary.locator("#launch-blocked").count() == 0


def test_the_live_check_logs_no_htmx_errors(wizard):
    """An out-of-band swap without its target logged htmx:oobErrorNoTarget on every check."""
    page = wizard
    _fill_everything_wrong(page)
    _assert_every_problem_shown(page)
    page.fill("textarea[name=new_ssh_key]", "-----BEGIN OPENSSH PRIVATE KEY-----")
    page.locator("textarea[name=new_ssh_key]").blur()
    page.locator("#errors-new_ssh_key").get_by_text("That is a private key").wait_for()
    assert page.locator("textarea[name=new_ssh_key]").input_value() == ""  # emptied, not shown back
    page.locator("#region-fra1 input[type=radio]").nth(1).check()  # another zone: cards redrawn
    page.locator("#launch-summary").get_by_text("fra1-b").wait_for()
    page.wait_for_timeout(300)
    assert not [m for m in page.console if "oobErrorNoTarget" in m or "htmx:swapError" in m]
    assert not SshKey.objects.exists()


PAGES = [
    ("compute:instance_list", ()),
    ("compute:launch", ()),
    ("compute:ssh_keys", ()),
    ("compute:firewalls", ()),
    ("compute:volumes", ()),
    ("tenancy:project_dashboard", ()),
    ("budgets:project_leases", ()),
]


@pytest.mark.parametrize("width", [1366, 390])
def test_long_names_wrap_instead_of_widening_the_page(live_server, browser, width):
    load_demo_catalog()
    org = OrganizationFactory(name="O" * 80, slug="acme")
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    project = ProjectFactory(organization=org, name="P" * 80, slug="web-shop")
    InstanceFactory(project=project, name="a" * 63)
    FirewallRuleSet.objects.create(project=project, name="F" * 80, created_by=owner)
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url("**/o/**")
    wide = {}
    for name, args in PAGES:
        page.goto(live_server.url + reverse(name, args=[org.slug, project.slug, *args]))
        if name == "compute:launch":
            page.fill("input[name=name]", "a" * 61)
            page.fill("input[name=count]", "3")
            page.locator("#launch-summary").get_by_text("-1 …").wait_for()
        # What sticks out of the page's main column, other than what scrolls inside its own box
        # (a wide table on a phone). The header's layout on phones is not this test's business.
        wide[name] = page.evaluate(
            """() => [...document.querySelectorAll('main *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                .filter(e => !e.parentElement.closest('.table, .table-wide, .table-scroll'))
                .map(e => e.tagName + ' ' + (e.innerText || '').slice(0, 20))"""
        )
    context.close()
    assert not any(wide.values()), wide
