"""A customer's storage, in Chromium against a live server with a real Celery worker on the
simulated cloud: a volume (its price shown before it is made) → attached to a running server, the
server's page showing the device and the lines to mount it → a snapshot of that server (its price
shown before the click) → My images → Launch: the wizard opens with the snapshot chosen, and a new
server boots from it → daily backups keeping 3 → the usage page, with the volume and the snapshot
on the bill and a Snapshots meter.

Walked twice: on a laptop (1366 px) and on a phone (390 px, where no step may scroll sideways).
Each step is a screenshot in docs/screenshots/, the phone's with a -mobile suffix.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.catalog.demo import load_demo_catalog
from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.models import BackupSchedule, Instance, Snapshot, Volume
from portal.tenancy.access import project_access
from portal.tenancy.models import Role
from tests.browser.pages import fitting_shots
from tests.browser.wizard import launch_from_wizard
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker]

ROOT_DISK_GIB = 50


def launch_shop_db(project, owner) -> Instance:
    """shop-db, launched as the wizard would and booted by the worker: the storage is the story."""
    access = project_access(owner, project.organization.slug, project.slug)
    batch = services.instance_launch(
        access=access,
        req=services.LaunchRequest(
            name="shop-db",
            count=1,
            zone=Zone.objects.get(code="fra1-a"),
            flavor=Flavor.objects.get(code="s-1vcpu-2gb"),
            image=Image.objects.get(name="Debian 13"),
            root_disk_gib=ROOT_DISK_GIB,
        ),
    )
    return batch.instances.get()


@pytest.mark.parametrize(("width", "suffix"), [(1366, ""), (390, "-mobile")], ids=["laptop", "phone"])
def test_volume_snapshot_image_backups_usage(width, suffix, celery_worker_process, live_server, new_page, shoot):
    load_demo_catalog()
    shoot = fitting_shots(shoot, suffix)
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com", name="Dana Smith")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")
    server = launch_shop_db(project, owner)

    page = new_page(width=width, height=860 if width > 600 else 844)
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url("**/o/**")
    page.goto(live_server.url + project.get_absolute_url())
    sidebar = page.locator(".sidebar")

    # --- A volume: its price before it is made, then available without a reload ----------------
    sidebar.get_by_role("link", name="Volumes").click()
    page.wait_for_url("**/p/web-shop/volumes/")
    page.fill("input[name=name]", "shop-data")
    price = page.locator("#volume-price")
    assert price.inner_text() == "10.00 EUR a month for 100 GiB"  # the size offered, 0.10 a GiB
    page.fill("input[name=size_gib]", "250")
    price.get_by_text("25.00 EUR a month").wait_for()  # as it is typed
    page.fill("input[name=size_gib]", "0")
    price.get_by_text("Enter 1 to 16384 GiB to see the price.").wait_for()
    page.fill("input[name=size_gib]", "100")
    price.get_by_text("10.00 EUR a month").wait_for()
    page.select_option("select[name=zone]", str(Zone.objects.get(code="fra1-a").pk))
    page.get_by_role("button", name="Create volume").click()
    page.get_by_text("Creating shop-data (100 GiB, 10.00 EUR a month) in fra1-a").wait_for()
    row = page.locator("#volume-table tr", has_text="shop-data")
    row.locator(".status-vol-available").wait_for(timeout=30_000)
    volume = Volume.objects.get(project=project, name="shop-data")
    assert volume.size_gib == 100 and volume.status == "available"
    shoot(page, "60-storage-volume-created")

    # --- Attached to shop-db once it runs; the server's page says where and how to mount it -------
    row.get_by_role("link", name="shop-data").click()
    page.wait_for_url(f"**{volume.get_absolute_url()}")
    page.locator("h1 .status-vol-available").wait_for()
    attach = page.locator("select[name=instance]")
    attach.locator("option", has_text="shop-db (running)").wait_for(state="attached", timeout=30_000)
    attach.select_option(label="shop-db (running)")
    page.get_by_role("button", name="Attach").click()
    page.locator("h1 .status-vol-in_use").wait_for(timeout=30_000)
    volume.refresh_from_db()
    assert volume.attached_to_id == server.pk and volume.device == "/dev/vdb"

    page.locator("dd a", has_text="shop-db").click()
    page.wait_for_url(f"**{server.get_absolute_url()}")
    card = page.locator("#volumes")
    assert "shop-data · 100 GiB" in card.inner_text() and "as /dev/vdb" in card.inner_text()
    lines = card.locator(".mount-lines").inner_text()
    assert "sudo mkfs.ext4 -L shop-data /dev/vdb" in lines
    assert "sudo mount /dev/vdb /mnt/shop-data" in lines
    shoot(page, "61-storage-volume-attached")

    # --- A snapshot of shop-db: its price beside the button ---------------------------------------
    snapshots = page.locator("#snapshots")
    price = snapshots.locator(".price-note").inner_text()
    assert price.startswith("+") and "EUR/month" in price and f"{ROOT_DISK_GIB} GiB" in price
    snapshots.locator("#snapshot-name").fill("before-upgrade")
    snapshots.get_by_role("button", name="Take snapshot").click()
    page.get_by_text("Taking snapshot before-upgrade").wait_for()
    taken = snapshots.locator("li", has_text="before-upgrade")
    taken.get_by_role("link", name="Launch from this").wait_for(timeout=30_000)  # once available
    snapshots.get_by_role("button", name="Take snapshot").wait_for()  # "being taken: wait" is gone
    assert not snapshots.get_by_text("is being taken").count()
    page.locator("#restore").get_by_text("Restore disk…").wait_for()  # nor in the Restore disk section
    snapshot = Snapshot.objects.get(project=project, name="before-upgrade")
    assert snapshot.status == "available" and snapshot.image is not None
    assert f"{ROOT_DISK_GIB} GiB" in taken.inner_text()
    shoot(page, "62-storage-snapshot")

    # --- My images → Launch: the wizard with the snapshot chosen, and a server from it ----------------
    sidebar.get_by_role("link", name="Images").click()
    page.wait_for_url("**/p/web-shop/images/")
    image_row = page.locator(f"#image-{snapshot.image.pk}")
    assert "shop-db" in image_row.inner_text()
    image_row.get_by_role("link", name="Launch").click()
    page.wait_for_url(f"**/servers/new/?image={snapshot.image.pk}*")
    chosen = page.locator(f'input[name=image][value="{snapshot.image.pk}"]')
    assert chosen.is_checked()
    summary = page.locator("#launch-summary")
    summary.get_by_text(snapshot.image.name, exact=True).wait_for()
    page.fill("input[name=name]", "shop-db-copy")
    page.locator("#section-size label", has_text="Starter 2").click()
    summary.get_by_text(re.compile(r"^Starter 2 ·")).wait_for()
    shoot(page, "63-storage-launch-from-image")
    launch_from_wizard(page, "Launch server")
    page.locator("tr", has_text="shop-db-copy").locator(".status-running").wait_for(timeout=45_000)
    copy = Instance.objects.get(project=project, name="shop-db-copy")
    assert copy.image_id == snapshot.image.pk and copy.zone_id == server.zone_id

    # --- Daily backups of shop-db, the newest 3 kept ------------------------------------------
    page.goto(live_server.url + server.get_absolute_url() + "#backups")
    backups = page.locator("#backups")
    backups.locator("#backup-enabled").select_option("1")
    backups.locator("#backup-frequency").select_option("daily")
    backups.locator("#backup-hour").select_option("3")
    backups.locator("#backup-keep").fill("3")
    backups.get_by_role("button", name="Save schedule").click()
    page.wait_for_url("**#backups")
    page.get_by_text("Backups of shop-db: ").wait_for()
    schedule = BackupSchedule.objects.get(instance=server)
    assert schedule.enabled and schedule.frequency == "daily" and schedule.hour == 3 and schedule.keep == 3
    assert schedule.summary in backups.inner_text()
    shoot(page, "64-storage-backups")

    # --- Usage: the volume and the snapshot are on the bill, snapshots a meter of their own ------------
    sidebar.get_by_role("link", name="Usage").first.click()
    page.locator(".usage-charts[data-drawn]").wait_for()
    resources = page.locator("section", has_text="Cost per server, volume and snapshot").inner_text()
    assert "shop-data\nVolume" in resources and "before-upgrade\nSnapshot" in resources
    cost_table = page.locator("table", has_text="Cost per day in")
    assert "Snapshots" in cost_table.locator("thead").text_content()  # the meters, folded away
    assert "volumes and snapshots" in page.locator("#chart-storage-title").inner_text()
    shoot(page, "65-storage-usage")
    assert not page.csp_violations
