"""A server's page in Chromium: the console appearing while the server boots, the resize panel and
its confirmation of a smaller size, and the page of a terminated server. Each state is also shot at
a desktop and a phone width (into the test's tmp_path) and must not scroll sideways on the phone."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from portal.catalog.demo import load_demo_catalog
from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.models import Instance, Operation, SimulatedKnobs
from portal.tenancy.access import project_access
from portal.tenancy.models import Role
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory
from tests.steps import step

pytestmark = pytest.mark.browser

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


def test_a_page_opened_while_the_server_boots_shows_its_console_without_a_reload(
    owner_page, tmp_path, monkeypatch
):
    """The README's walk-through: launch, open the server's page, and a few seconds later its
    console shows the boot. The operation is stepped here, as the worker's messages would step it."""
    page, project = owner_page, owner_page.project
    monkeypatch.setattr("portal.compute.services.instances.operations_enqueue", lambda steps: None)
    SimulatedKnobs.objects.create(boot_seconds=3, action_seconds=0, transient_error_rate=0)
    access = project_access(page.owner, project.organization.slug, project.slug)
    batch = services.instance_launch(
        access=access,
        req=services.LaunchRequest(
            name="web-1",
            count=1,
            zone=Zone.objects.get(code="fra1-a"),
            flavor=Flavor.objects.get(code="s-1vcpu-2gb"),
            image=Image.objects.get(name="Debian 13"),
            root_disk_gib=50,
        ),
    )
    instance = Instance.objects.get(batch=batch)
    operation = Operation.objects.get(instance=instance)

    page.goto(page.base + instance.get_absolute_url())
    page.locator("h1 .status-pending").wait_for()
    assert page.locator(".console-card").count() == 0  # not in the cloud yet
    page.evaluate("window.__sameDocument = true")

    step(operation)  # the cloud accepts it and builds it for three seconds
    instance.refresh_from_db()
    assert instance.status == "provisioning" and instance.backend_id
    page.locator("h1 .status-provisioning").wait_for()
    card = page.locator(".console-card")
    card.wait_for()  # appears with the next poll of the page
    card.get_by_text("Nothing printed yet: web-1 is provisioning.").wait_for()
    # The live region is swapped every 2 s; the card in it is kept (not reloaded) meanwhile.
    card.evaluate("e => { e.__kept = true; }")
    with page.expect_response(lambda r: r.url.endswith(instance.get_absolute_url())):
        pass
    page.wait_for_timeout(300)  # swapped and settled
    assert card.evaluate("e => e.__kept === true")
    look(page, tmp_path, "server-provisioning", ".console-card")

    time.sleep(3)
    step(operation)  # booted: the cloud says running
    page.locator("h1 .status-running").wait_for()
    page.locator("#console").get_by_text("web-1 login:").wait_for()  # the card loaded afresh
    assert "Linux version" in page.locator("#console").inner_text()
    assert page.evaluate("window.__sameDocument === true")  # no reload happened
    look(page, tmp_path, "server-running", ".console-card")
    assert not page.csp_violations


def test_resize_shows_what_changes_and_a_smaller_size_asks_once_more(owner_page, tmp_path):
    from tests.factories import InstanceFactory

    page, project = owner_page, owner_page.project
    instance = InstanceFactory(project=project, name="db-1", status="stopped", addresses=["100.64.0.9"])
    page.goto(page.base + instance.get_absolute_url())
    panel = page.locator(".resize-panel")
    assert not panel.is_visible()
    page.locator("summary", has_text="Resize…").click()
    panel.wait_for()
    assert panel.locator("input[type=radio], select").count() == 0  # nothing to preselect
    bigger = panel.locator("#resize-s-2vcpu-4gb")
    assert "1 → 2" in bigger.inner_text() and "13.03 → 21.06 EUR" in bigger.inner_text()
    look(page, tmp_path, "server-resize-panel", ".actions-card")

    smaller = panel.locator("#resize-s-1vcpu-1gb")
    smaller.locator("summary", has_text="Resize to Starter 1").click()
    confirm = smaller.get_by_role("button", name="Shrink db-1 to Starter 1")
    confirm.wait_for()
    assert "It gets 1 GiB RAM instead of 2" in smaller.inner_text()
    assert not Operation.objects.exists()  # asking is not doing
    look(page, tmp_path, "server-resize-confirm", ".actions-card")
    confirm.click()
    page.locator("h1 .status-resizing").wait_for()
    assert (
        Operation.objects.get(instance=instance).params["flavor_id"]
        == Flavor.objects.get(code="s-1vcpu-1gb").pk
    )
    assert not page.csp_violations
