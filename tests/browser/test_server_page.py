"""A server's page in Chromium: the console appearing while the server boots, the resize panel and
its confirmation of a smaller size, and the page of a terminated server that its e-mail links to. Each state is also shot at a desktop and
a phone width (tests/browser/pages.py)."""

from __future__ import annotations

import time

import pytest

from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.models import Instance, Operation, SimulatedKnobs
from portal.tenancy.access import project_access
from tests.browser.pages import look, owner_page
from tests.steps import drive, step

pytestmark = pytest.mark.browser

__all__ = ["owner_page"]  # the fixture


def test_a_page_opened_while_the_server_boots_shows_its_console_without_a_reload(
    owner_page, tmp_path, monkeypatch
):
    """The README's walk-through: launch, open the server's page, and a few seconds later its
    console shows the boot. The operation is stepped here, as the worker's messages would step it."""
    page, project = owner_page, owner_page.project
    monkeypatch.setattr("portal.compute.services.common.operations_enqueue", lambda steps: None)
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


def test_a_terminated_server_leaves_a_page_its_email_links_to(owner_page, tmp_path, monkeypatch, mailoutbox):
    from datetime import timedelta

    from django.conf import settings

    from portal.metering.models import UsageSegment

    page, project = owner_page, owner_page.project
    monkeypatch.setattr("portal.compute.services.common.operations_enqueue", lambda steps: None)
    SimulatedKnobs.objects.create(boot_seconds=0, action_seconds=0, transient_error_rate=0)
    access = project_access(page.owner, project.organization.slug, project.slug)
    batch = services.instance_launch(
        access=access,
        req=services.LaunchRequest(
            name="report-1",
            count=1,
            zone=Zone.objects.get(code="fra1-a"),
            flavor=Flavor.objects.get(code="s-2vcpu-4gb"),
            image=Image.objects.get(name="Debian 13"),
            root_disk_gib=80,
        ),
    )
    instance = Instance.objects.get(batch=batch)
    drive(Operation.objects.get(instance=instance))
    instance.refresh_from_db()
    address = instance.public_address

    page.goto(page.base + instance.get_absolute_url())
    page.fill("#confirm-name", "report-1")
    page.get_by_role("button", name="Terminate", exact=True).click()
    page.get_by_text("Terminating report-1.").wait_for()
    drive(Operation.objects.get(instance=instance, action="terminate"))
    page.reload()
    assert page.get_by_role("link", name="report-1").count() == 0  # not in the list any more
    # As if it had run for two days: its segments and creation moved back, its end kept.
    earlier = timedelta(days=2)
    Instance.objects.filter(pk=instance.pk).update(created_at=instance.created_at - earlier)
    for segment in UsageSegment.objects.filter(resource_id=instance.pk):
        UsageSegment.objects.filter(pk=segment.pk).update(started_at=segment.started_at - earlier)

    mail = next(m for m in mailoutbox if m.subject.startswith("report-1 was terminated"))
    link = next(line.split(": ", 1)[1] for line in mail.body.splitlines() if line.startswith("What it was"))
    assert link.startswith(settings.PORTAL_BASE_URL)
    page.goto(page.base + link.removeprefix(settings.PORTAL_BASE_URL))
    page.locator("h1 .status-terminated").wait_for()
    main = page.locator("#main").inner_text()
    assert "by dana@example.com" in main and address in main
    assert "Standard 4 · 2 vCPU · 4 GiB RAM" in main and "Existed\n2\xa0days" in main
    assert "Ran\n48.0 h" in main
    assert page.locator("#main form").count() == 0  # nothing left to do
    look(page, tmp_path, "server-terminated")
    assert not page.csp_violations
