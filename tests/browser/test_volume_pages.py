"""Volume pages in Chromium: a volume being created turns available on the open page without a
reload, its page shows the device and how to mount it once attached, the price of a larger size
before the click, and the server's page lists its volumes. Shot at a desktop and a phone width."""

from __future__ import annotations

import pytest

from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.models import Operation, SimulatedKnobs, Volume
from portal.compute.services import volumes as volume_services
from portal.tenancy.access import project_access
from tests.browser.pages import look, owner_page
from tests.steps import drive

pytestmark = pytest.mark.browser

__all__ = ["owner_page"]  # the fixture


@pytest.fixture
def world(owner_page, monkeypatch):
    page, project = owner_page, owner_page.project
    monkeypatch.setattr("portal.compute.services.common.operations_enqueue", lambda steps: None)
    SimulatedKnobs.objects.create(boot_seconds=0, action_seconds=0, transient_error_rate=0)
    access = project_access(page.owner, project.organization.slug, project.slug)
    fra = Zone.objects.get(code="fra1-a")
    batch = services.instance_launch(
        access=access,
        req=services.LaunchRequest(
            name="db-1",
            count=1,
            zone=fra,
            flavor=Flavor.objects.get(code="s-1vcpu-2gb"),
            image=Image.objects.get(name="Debian 13"),
            root_disk_gib=50,
        ),
    )
    drive(Operation.objects.get(instance__batch=batch))
    server = batch.instances.get()
    return page, access, fra, server


def test_volume_pages(world, tmp_path):
    page, access, fra, server = world
    data = volume_services.volume_create(access=access, name="postgres-data", zone=fra, size_gib=100)
    drive(data)
    data = Volume.objects.get(pk=data.volume_id)
    drive(volume_services.volume_attach(access=access, volume=data, instance=server))
    Volume.objects.create(
        project=access.project,
        name="old-backups",
        zone=fra,
        size_gib=500,
        status="error",
        fault_message="This volume was never created in the cloud; it is no longer billed.",
    )
    creating = volume_services.volume_create(access=access, name="scratch", zone=fra, size_gib=20)
    ams = Zone.objects.filter(region__is_active=True).exclude(pk=fra.pk).first()
    ams.backend_settings = {"absent": ["volumes"]}
    ams.save()

    page.goto(page.base + f"/o/{access.organization.slug}/p/{access.project.slug}/volumes/")
    row = page.locator("tr", has_text="scratch")
    row.locator(".status-vol-creating").wait_for()
    page.get_by_text(f"Volumes are not available in {ams.code}.").first.wait_for()
    look(page, tmp_path, "volumes-list")
    page.evaluate("window.__sameDocument = true")
    drive(creating)
    row.locator(".status-vol-available").wait_for()  # the next poll, no reload
    assert page.evaluate("window.__sameDocument === true")

    page.goto(page.base + data.get_absolute_url())
    page.locator("h1 .status-vol-in_use").wait_for()
    assert "sudo mount /dev/vdb /mnt/postgres-data" in page.locator(".mount-lines").inner_text()
    look(page, tmp_path, "volume-attached")

    scratch = Volume.objects.get(name="scratch")
    page.goto(page.base + scratch.get_absolute_url())
    table = page.locator(".extend-table")
    row = table.locator("tr", has_text="40 GiB")
    assert "+2.00 EUR a month (4.00 in all)" in row.inner_text()  # 20 GiB more at 0.10 a GiB and month
    look(page, tmp_path, "volume-available")
    page.get_by_role("button", name="Extend to 40 GiB").click()
    page.locator("h1 .status-vol-extending").wait_for()
    drive(Operation.objects.get(volume=scratch, action="volume_extend"))
    page.locator("h1 .status-vol-available").wait_for()
    assert Volume.objects.get(pk=scratch.pk).size_gib == 40

    page.goto(page.base + server.get_absolute_url())
    card = page.locator("#volumes")
    card.get_by_text("/dev/vdb").first.wait_for()
    assert "sudo mkfs.ext4 -L postgres-data /dev/vdb" in card.inner_text()
    look(page, tmp_path, "server-with-volume", "#volumes")
    assert not page.csp_violations
