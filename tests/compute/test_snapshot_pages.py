"""The pages: a server's Snapshots and Backups sections, the project's Snapshots and Images pages,
the launch wizard's "Your images". Refusals answer 4xx with the reason and change nothing; a zone
without snapshots says so instead of offering the button."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.models import Image
from portal.compute.models import BackupSchedule, Instance, Operation, Snapshot
from tests.factories import InstanceFactory
from tests.steps import drive


@pytest.fixture
def server(project, catalog, knobs):
    return InstanceFactory(project=project, name="web-1", root_disk_gib=50)


def _url(project, name, *args):
    return reverse(f"compute:{name}", args=[project.organization.slug, project.slug, *args])


def test_the_server_page_offers_a_snapshot_with_its_price(server, member, client_as):
    page = client_as(member).get(server.get_absolute_url()).content.decode()
    assert 'id="snapshots"' in page and 'id="backups"' in page
    assert "Take snapshot" in page and "+2.48 EUR/month" in page  # 50 GiB x 0.000068 x 730 h
    assert "Save schedule" in page


def test_a_viewer_sees_the_sections_without_buttons(server, viewer, client_as):
    page = client_as(viewer).get(server.get_absolute_url()).content.decode()
    assert 'id="snapshots"' in page and "Take snapshot" not in page and "Save schedule" not in page


def test_a_zone_without_snapshots_says_so_instead_of_the_button(server, member, client_as):
    server.zone.backend_settings = {"absent": ["server_snapshots"]}
    server.zone.save()
    page = client_as(member).get(server.get_absolute_url()).content.decode()
    assert "Take snapshot" not in page and "Save schedule" not in page
    assert "Server snapshots are not available in fra1-a." in page


def test_a_busy_server_shows_why_instead_of_the_button(server, member, client_as):
    Instance.objects.filter(pk=server.pk).update(status="resizing")
    page = client_as(member).get(server.get_absolute_url()).content.decode()
    assert "Take snapshot" not in page
    assert "web-1 is being resized: it can&#x27;t be snapshotted now." in page


def test_taking_a_snapshot_from_the_server_page(server, member, client_as, project):
    response = client_as(member).post(_url(project, "snapshots"), {"instance": str(server.pk), "name": "pre"})
    assert response.status_code == 302 and response["Location"].endswith("#snapshots")
    snapshot = Snapshot.objects.get()
    assert (snapshot.name, snapshot.source_instance, snapshot.status) == ("pre", server, "creating")


def test_a_refused_snapshot_is_a_409_with_the_reason(server, member, client_as, project):
    Instance.objects.filter(pk=server.pk).update(status="terminating")
    response = client_as(member).post(_url(project, "snapshots"), {"instance": str(server.pk)})
    assert response.status_code == 409
    assert "web-1 is being terminated: it can&#x27;t be snapshotted now." in response.content.decode()
    assert not Snapshot.objects.exists()


def test_another_projects_server_is_a_400(member, client_as, project, org, catalog):
    from tests.factories import ProjectFactory

    theirs = InstanceFactory(project=ProjectFactory(organization=org, slug="elsewhere"))
    response = client_as(member).post(_url(project, "snapshots"), {"instance": str(theirs.pk)})
    assert response.status_code == 400 and not Snapshot.objects.exists()


def test_a_viewer_may_not_post(server, viewer, client_as, project):
    assert client_as(viewer).post(_url(project, "snapshots"), {"instance": str(server.pk)}).status_code == 403
    assert not Snapshot.objects.exists()


def test_the_backup_schedule_form_lists_every_problem(server, member, client_as, project):
    response = client_as(member).post(
        _url(project, "instance_backups", server.pk),
        {"enabled": "1", "frequency": "weekly", "weekday": "", "hour": "24", "keep": "0"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    for words in (
        "Choose an hour from 0 to 23 (UTC).",
        "Choose the day of the week",
        "Keep at least 1 backup",
    ):
        assert words in page
    assert not BackupSchedule.objects.exists()


def test_saving_a_schedule(server, member, client_as, project):
    response = client_as(member).post(
        _url(project, "instance_backups", server.pk),
        {"enabled": "1", "frequency": "daily", "weekday": "", "hour": "2", "keep": "5"},
    )
    assert response.status_code == 302 and response["Location"].endswith("#backups")
    page = client_as(member).get(server.get_absolute_url()).content.decode()
    assert "every day at 02:00 UTC, the newest 5 kept" in page


def test_images_page_lists_own_images_with_launch_and_refusal(access, project, member, client_as, launch):
    batch = launch(name="base")
    drive(Operation.objects.get(instance__batch=batch))
    base = Instance.objects.get(batch=batch)
    from portal.compute.services.snapshots import snapshot_create

    drive(snapshot_create(access=access, instance=base, name="golden"))
    image = Snapshot.objects.get(name="golden").image
    upload = Image.objects.create(name="uploaded", os_family="debian", version="1", project=project)
    page = client_as(member).get(_url(project, "images")).content.decode()
    assert "golden" in page and "uploaded" in page and "Debian 13" not in page
    assert f"?image={image.pk}&zone={base.zone.pk}" in page
    assert "Can't be deleted: uploaded was provided by your operator" in page
    refused = client_as(member).post(_url(project, "image_delete", upload.pk))
    assert refused.status_code == 409 and Image.objects.get(pk=upload.pk).is_active
    assert client_as(member).post(_url(project, "image_delete", image.pk)).status_code == 302
    assert Snapshot.objects.get(name="golden").status == "deleting"


def test_the_wizard_preselects_the_image_and_offers_your_images(access, project, member, client_as, launch):
    batch = launch(name="base")
    drive(Operation.objects.get(instance__batch=batch))
    base = Instance.objects.get(batch=batch)
    from portal.compute.services.snapshots import snapshot_create

    drive(snapshot_create(access=access, instance=base, name="golden"))
    image = Snapshot.objects.get(name="golden").image
    page = (
        client_as(member)
        .get(_url(project, "launch") + f"?image={image.pk}&zone={base.zone.pk}")
        .content.decode()
    )
    assert "Your images" in page
    assert f'value="{image.pk}" checked' in page


def test_snapshots_page(server, member, client_as, project):
    Snapshot.objects.create(
        project=project,
        zone=server.zone,
        name="pre",
        kind="server",
        source_instance=server,
        status="available",
        size_gib=50,
    )
    page = client_as(member).get(_url(project, "snapshots")).content.decode()
    assert "pre" in page and "2.48 EUR" in page and "Frankfurt" in page
