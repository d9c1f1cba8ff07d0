"""The snapshot pages in a browser at a desktop and a phone width: a server's Snapshots and
Backups sections, the project's Snapshots and My images pages, the wizard with an image chosen.
No page scrolls sideways on the phone; the shots land in the test's tmp_path."""

from __future__ import annotations

import os

import pytest
from django.urls import reverse

from portal.compute.models import BackupSchedule, Instance, Operation, SimulatedKnobs, Snapshot
from portal.compute.services.backups import backup_schedule_set
from portal.compute.services.snapshots import snapshot_create
from portal.tenancy.access import project_access
from tests.browser.pages import look, owner_page  # noqa: F401 (fixture)
from tests.factories import InstanceFactory
from tests.steps import drive

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("SNAPSHOT_SHOTS_DIR")  # keep the shots somewhere to look at them


def _seed(page):
    SimulatedKnobs.objects.create(boot_seconds=0, action_seconds=0, transient_error_rate=0)
    project, owner = page.project, page.owner
    access = project_access(owner, project.organization.slug, project.slug)
    from portal.catalog.models import Flavor, Image, Zone
    from portal.compute import services

    batch = services.instance_launch(
        access=access,
        req=services.LaunchRequest(
            name="shop-db",
            count=1,
            zone=Zone.objects.get(code="fra1-a"),
            flavor=Flavor.objects.get(code="s-1vcpu-2gb"),
            image=Image.objects.get(name="Debian 13"),
            root_disk_gib=50,
        ),
    )
    drive(Operation.objects.get(instance__batch=batch))
    server = Instance.objects.get(batch=batch)
    drive(snapshot_create(access=access, instance=server, name="before-php-upgrade"))
    backup_schedule_set(access=access, instance=server, frequency="daily", hour=3, keep=7)
    from portal.compute import backups

    BackupSchedule.objects.filter(instance=server).update(next_run_at="2020-01-01T00:00Z")
    drive(*[pk for pk, _, _ in backups.backups_run_due()])
    snapshot_create(access=access, instance=server, name="while-it-is-taken")  # creating
    InstanceFactory(project=project, name="legacy-app")
    return server


def test_snapshot_pages_at_both_widths(owner_page, tmp_path):  # noqa: F811
    page = owner_page
    server = _seed(page)
    out = tmp_path if not SHOTS else __import__("pathlib").Path(SHOTS)
    org, project = page.project.organization.slug, page.project.slug
    page.goto(page.base + server.get_absolute_url() + "#snapshots")
    page.get_by_role("heading", name="Snapshots").wait_for()
    look(page, out, "server-snapshots", "#snapshots")
    look(page, out, "server-backups", "#backups")
    page.goto(page.base + reverse("compute:snapshots", args=[org, project]))
    look(page, out, "snapshots-page")
    page.goto(page.base + reverse("compute:images", args=[org, project]))
    look(page, out, "images-page")
    image = Snapshot.objects.get(name="before-php-upgrade").image
    page.get_by_role("link", name="Launch").first.click()
    page.wait_for_url(f"**/servers/new/?image={image.pk}*")
    assert page.locator(f'input[name=image][value="{image.pk}"]').is_checked()
    look(page, out, "wizard-your-images", "#section-image")
    # A refused schedule comes back with every reason.
    page.goto(page.base + server.get_absolute_url() + "#backups")
    page.fill("#backup-keep", "0")
    page.select_option("#backup-frequency", "weekly")
    page.get_by_role("button", name="Save schedule").click()
    page.locator("#problems").wait_for()
    look(page, out, "backups-refused", "#problems")
    assert page.csp_violations == []
