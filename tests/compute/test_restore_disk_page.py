"""The server page's "Restore disk…": only this server's snapshots and backups (and the project's
fitting images) in its zone are offered, the warning says what is lost and that it restarts, the
typed name confirms; GET is 405, an outsider 404, a viewer 403, a refusal re-renders every reason
with its status and changes nothing, a zone without it says so."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.compute.models import Instance, Operation, Snapshot
from tests.factories import InstanceFactory, ProjectFactory


@pytest.fixture
def server(project, catalog, knobs):
    return InstanceFactory(
        project=project, name="web-1", root_disk_gib=50, status="running", backend_id="sim-w"
    )


@pytest.fixture
def backup(server):
    return Snapshot.objects.create(
        project=server.project,
        zone=server.zone,
        name="nightly",
        kind="backup",
        source_instance=server,
        status="available",
        image_ref="simimg-nightly",
        min_disk_gib=50,
    )


def _url(server):
    return reverse(
        "compute:instance_restore", args=[server.project.organization.slug, server.project.slug, server.pk]
    )


def test_the_panel_warns_and_asks_for_the_name(server, backup, member, client_as):
    page = client_as(member).get(server.get_absolute_url()).content.decode()
    assert "Restore disk…" in page
    assert f'value="snapshot:{backup.pk}"' in page
    assert "Everything written to web-1's disk since that snapshot is lost." in page
    assert "web-1 is powered off for it and starts again on the restored disk" in page
    assert 'id="restore-confirm-name"' in page


def test_another_servers_snapshot_is_not_offered(server, backup, member, client_as, project):
    other = InstanceFactory(project=project, name="web-2", root_disk_gib=50)
    page = client_as(member).get(other.get_absolute_url()).content.decode()
    assert f'value="snapshot:{backup.pk}"' not in page
    assert "Nothing to restore from yet" in page


def test_restoring(server, backup, member, client_as):
    response = client_as(member).post(
        _url(server), {"source": f"snapshot:{backup.pk}", "confirm_name": "web-1"}
    )
    assert response.status_code == 302
    assert Instance.objects.get(pk=server.pk).status == "rebuilding"
    page = client_as(member).get(server.get_absolute_url()).content.decode()
    assert "The disk of web-1 is being restored." in page
    assert "Restoring disk" in page  # the status badge


def test_a_wrong_name_is_a_400_with_every_reason_and_nothing_changes(server, backup, member, client_as):
    Snapshot.objects.filter(pk=backup.pk).update(min_disk_gib=60)
    response = client_as(member).post(
        _url(server), {"source": f"snapshot:{backup.pk}", "confirm_name": "web"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Type the server&#x27;s name “web-1” to confirm." in page
    assert "“nightly” needs a disk of at least 60 GiB; web-1&#x27;s disk is 50 GiB." in page
    assert '<details class="confirm restore" open>' in page
    assert not Operation.objects.exists() and Instance.objects.get(pk=server.pk).status == "running"


def test_get_is_405_outsider_404_viewer_403(server, backup, viewer, outsider, client_as, org):
    assert client_as(viewer).get(_url(server)).status_code == 405
    body = {"source": f"snapshot:{backup.pk}", "confirm_name": "web-1"}
    assert client_as(outsider).post(_url(server), body).status_code == 404
    assert client_as(viewer).post(_url(server), body).status_code == 403
    assert not Operation.objects.exists()


def test_another_projects_snapshot_is_a_404(server, member, client_as, org):
    other = ProjectFactory(organization=org, slug="other")
    theirs = Snapshot.objects.create(
        project=other,
        zone=server.zone,
        name="theirs",
        kind="server",
        status="available",
        image_ref="simimg-x",
    )
    response = client_as(member).post(
        _url(server), {"source": f"snapshot:{theirs.pk}", "confirm_name": "web-1"}
    )
    assert response.status_code == 404 and not Operation.objects.exists()


def test_a_zone_without_it_says_so(server, backup, member, client_as):
    server.zone.backend_settings = {"absent": ["server_rebuild"]}
    server.zone.save()
    page = client_as(member).get(server.get_absolute_url()).content.decode()
    assert "Restoring a server&#x27;s disk from a snapshot or backup is not available in fra1-a." in page
    assert "Restore disk…" not in page
