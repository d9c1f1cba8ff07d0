"""Restoring a server's disk from its snapshot, in Chromium against a live server with a real Celery
worker on the simulated cloud: the server page's "Restore disk…" lists the server's snapshot, warns
that everything written since is lost and that the server restarts, and asks for the name; a wrong
name comes back with the reason and nothing changed; the right one shows the server "Restoring
disk", and then running again on the snapshot's image, without a reload.

Walked twice: on a laptop (1366 px) and on a phone (390 px, where no step may scroll sideways).
Each step is a screenshot in docs/screenshots/, the phone's with a -mobile suffix.
"""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from portal.catalog.demo import load_demo_catalog
from portal.compute.models import Instance, Operation, Snapshot
from portal.compute.services.snapshots import snapshot_create
from portal.tenancy.access import project_access
from portal.tenancy.models import Role
from tests.browser.pages import fitting_shots
from tests.browser.test_storage_journey import launch_shop_db
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def _until(check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    pytest.fail("the worker did not get there in time")


def _server_with_snapshot(project, owner) -> tuple[Instance, Snapshot]:
    """shop-db, booted by the worker, and a snapshot of it taken by the worker."""
    access = project_access(owner, project.organization.slug, project.slug)
    server = launch_shop_db(project, owner)
    _until(lambda: Instance.objects.get(pk=server.pk).status == "running")
    op = snapshot_create(access=access, instance=Instance.objects.get(pk=server.pk), name="before-upgrade")
    _until(lambda: Snapshot.objects.get(pk=op.snapshot_id).status == "available")
    return Instance.objects.get(pk=server.pk), Snapshot.objects.get(pk=op.snapshot_id)


@pytest.mark.parametrize(("width", "suffix"), [(1366, ""), (390, "-mobile")], ids=["laptop", "phone"])
def test_restore_a_servers_disk_from_its_snapshot(
    width, suffix, celery_worker_process, live_server, new_page, shoot
):
    load_demo_catalog()
    shoot = fitting_shots(shoot, suffix)
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com", name="Dana Smith")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")
    server, snapshot = _server_with_snapshot(project, owner)

    page = new_page(width=width, height=860 if width > 600 else 844)
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url("**/o/**")
    page.goto(live_server.url + server.get_absolute_url() + "#restore")

    # --- The confirmation: what it restores from, what is lost, the name typed ----------------------
    panel = page.locator("#restore")
    panel.get_by_text("Restore disk…").click()
    choice = panel.locator(f'input[name=source][value="snapshot:{snapshot.pk}"]')
    assert choice.is_checked()
    warning = panel.locator(".restore-warning").inner_text()
    assert "Everything written to shop-db's disk since that snapshot is lost." in warning
    assert "shop-db is powered off for it and starts again on the restored disk" in warning
    panel.locator("#restore-confirm-name").fill("shop")
    panel.locator("#restore-heading").scroll_into_view_if_needed()
    shoot(page, "72-restore-confirm")

    # --- A wrong name: the reason, and nothing changed ------------------------------------------------
    panel.get_by_role("button", name="Restore disk of shop-db").click()
    page.locator("#problems").get_by_text("Type the server's name “shop-db” to confirm.").wait_for()
    assert Instance.objects.get(pk=server.pk).status == "running"
    assert not Operation.objects.filter(action="rebuild").exists()
    shoot(page, "73-restore-refused")

    # --- The right name: restoring, then running again on the snapshot's image -------------------------
    panel = page.locator("#restore")
    panel.locator("#restore-confirm-name").fill("shop-db")
    panel.get_by_role("button", name="Restore disk of shop-db").click()
    page.wait_for_url(f"**{server.get_absolute_url()}")
    page.get_by_text("Restoring the disk of shop-db from before-upgrade").wait_for()
    page.locator("h1 .status-rebuilding").wait_for()
    page.locator("#restore").get_by_text("The disk of shop-db is being restored.").wait_for()
    shoot(page, "74-restore-during")

    page.locator("h1 .status-running").wait_for(timeout=60_000)  # the live region, no reload
    page.locator("#restore").get_by_text("Restore disk…").wait_for(timeout=10_000)  # the panel is back
    page.locator("#snapshots").get_by_role("button", name="Take snapshot").wait_for(timeout=10_000)
    assert page.locator(".specs").get_by_text(snapshot.image.name).count()
    server.refresh_from_db()
    assert server.status == "running" and server.image_id == snapshot.image_id
    shoot(page, "75-restore-done")
    assert page.csp_violations == []
