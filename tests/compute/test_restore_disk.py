"""Restoring a server's disk from a snapshot or backup (a rebuild) through the one pipeline: the
cloud's server carries the snapshot's image and the rebuild's key, the server comes back as it was
(running, or stopped), audit and billing follow; every refusal is a clear 4xx, all at once, with
nothing changed; a repeat is a no-op; a failed restore e-mails the customer."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied

from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Image
from portal.compute.backends import REBUILD_METADATA_KEY, get_backend
from portal.compute.models import Instance, Operation, SimulatedServer, Snapshot, SnapshotKind, SnapshotStatus
from portal.compute.operations import OPERATIONS
from portal.compute.reconciler import reconcile
from portal.compute.services.common import ComputeRefused
from portal.compute.services.restores import instance_restore_disk, restore_choices
from portal.compute.services.snapshots import snapshot_create
from portal.tenancy.access import project_access
from tests.factories import ProjectFactory
from tests.steps import drive


@pytest.fixture
def server(launch):
    batch = launch(name="web")
    drive(Operation.objects.get(instance__batch=batch))
    return Instance.objects.get(batch=batch)


@pytest.fixture
def snapshot(access, server):
    op = snapshot_create(access=access, instance=server, name="before-upgrade")
    drive(op)
    return Snapshot.objects.get(pk=op.snapshot_id)


def _restore(access, server, **source):
    return instance_restore_disk(
        access=access, instance=server, confirm_name=source.pop("confirm_name", server.name), **source
    )


def test_the_disk_is_restored_and_the_server_runs_again(access, server, snapshot):
    op = _restore(access, server, snapshot=snapshot)
    server.refresh_from_db()
    assert (server.status, op.action, op.params["then"]) == ("rebuilding", "rebuild", "running")
    drive(op)
    op.refresh_from_db()
    server.refresh_from_db()
    assert (op.state, server.status) == ("succeeded", "running")
    assert server.image == snapshot.image  # its disk is the snapshot's now
    row = SimulatedServer.objects.get(backend_id=server.backend_id)
    assert row.image_ref == snapshot.image_ref and row.metadata[REBUILD_METADATA_KEY] == str(op.pk)
    event = AuditEvent.objects.get(action=AuditAction.INSTANCE_ACTION, target_id=str(server.pk))
    assert event.changes == {"action": [None, "Restore disk"], "from": [None, "before-upgrade"]}


def test_a_stopped_server_stays_stopped(access, server, snapshot):
    Instance.objects.filter(pk=server.pk).update(status="stopped")
    SimulatedServer.objects.filter(backend_id=server.backend_id).update(state="stopped")
    server.refresh_from_db()
    op = _restore(access, server, snapshot=snapshot)
    drive(op)
    server.refresh_from_db()
    assert server.status == "stopped"


def test_asking_again_returns_the_same_operation(access, server, snapshot):
    first = _restore(access, server, snapshot=snapshot)
    server.refresh_from_db()
    assert _restore(access, server, snapshot=snapshot) == first
    assert Operation.objects.filter(instance=server, action="rebuild").count() == 1


def test_a_repeated_submit_rebuilds_once(access, server, snapshot):
    op = _restore(access, server, snapshot=snapshot)
    drive(op)
    # A step delivered twice (a worker died after the cloud call) asks the cloud for nothing new.
    OPERATIONS["rebuild"].submit(get_backend("simulated"), [Operation.objects.get(pk=op.pk)])
    assert SimulatedServer.objects.get(backend_id=server.backend_id).state == "running"


def test_a_failed_restore_is_mailed_and_leaves_the_server_as_the_cloud_has_it(
    access, server, knobs, django_capture_on_commit_callbacks
):
    failing = _snapshot_named(access, server, "fail-me")
    mail.outbox.clear()
    op = _restore(access, server, snapshot=failing)
    with django_capture_on_commit_callbacks(execute=True):
        drive(op)
    op.refresh_from_db()
    server.refresh_from_db()
    assert op.state == "failed" and server.status == "error"
    assert server.fault_message == "The restored disk failed to boot."
    assert [m.subject for m in mail.outbox] == ["Restoring the disk of web failed"]
    assert "The restored disk failed to boot." in mail.outbox[0].body


def _snapshot_named(access, server, name):
    op = snapshot_create(access=access, instance=server, name=name)
    drive(op)
    return Snapshot.objects.get(pk=op.snapshot_id)


def test_the_page_offers_this_servers_snapshots_and_fitting_project_images(
    access, server, snapshot, project, catalog
):
    big = Image.objects.create(
        name="Too big", os_family="debian", version="1", min_disk_gib=500, project=project
    )
    big.zones.add(server.zone)
    big.backend_refs = {server.zone.code: "simimg-big"}
    big.save()
    being_taken = Snapshot.objects.create(
        project=project, zone=server.zone, name="now", kind=SnapshotKind.SERVER, source_instance=server
    )
    choices = {c.name: c for c in restore_choices(server)}
    assert set(choices) == {"before-upgrade", "now"}
    assert choices["before-upgrade"].refusal == ""
    assert choices["now"].refusal == "“now” is still being taken: wait until it is available."
    assert being_taken.status == SnapshotStatus.CREATING


# --- Refusals: a clear reason, nothing changed ------------------------------------------------


def _refused(access, server, **source) -> ComputeRefused:
    before = (
        Operation.objects.count(),
        AuditEvent.objects.count(),
        Instance.objects.get(pk=server.pk).status,
    )
    with pytest.raises(ComputeRefused) as refused:
        _restore(access, server, **source)
    after = (Operation.objects.count(), AuditEvent.objects.count(), Instance.objects.get(pk=server.pk).status)
    assert after == before
    return refused.value


def test_another_projects_snapshot_is_not_found(access, server, snapshot, org, owner):
    other = ProjectFactory(organization=org, slug="other")
    theirs = Snapshot.objects.create(
        project=other,
        zone=server.zone,
        name="theirs",
        kind=SnapshotKind.SERVER,
        status=SnapshotStatus.AVAILABLE,
    )
    refused = _refused(access, server, snapshot=theirs)
    assert (refused.status, refused.message) == (404, "No such snapshot or backup in this project.")


def test_a_snapshot_in_another_region_is_refused(access, server, snapshot, catalog):
    Snapshot.objects.filter(pk=snapshot.pk).update(zone=catalog["iad1-a"])
    snapshot.refresh_from_db()
    refused = _refused(access, server, snapshot=snapshot)
    assert refused.status == 400
    assert refused.message.startswith("“before-upgrade” is kept in iad1-a (")
    assert refused.message.endswith("A disk is restored only from a snapshot in its own zone.")


def test_a_snapshot_not_yet_available_is_refused(access, server):
    op = snapshot_create(access=access, instance=server, name="in-progress")
    refused = _refused(access, server, snapshot=op.snapshot)
    assert refused.status == 409
    assert [p.message for p in refused.problems] == [
        "“in-progress” is still being taken: wait until it is available.",
        "A snapshot of web is being taken: wait until it is done.",
    ]


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("terminated", "web is terminated: its disk can't be restored now."),
        ("resizing", "web is being resized: its disk can't be restored now."),
        ("rebuilding", "web is already having its disk restored: wait until it is done."),
    ],
)
def test_a_busy_server_is_refused(access, server, snapshot, status, words):
    Instance.objects.filter(pk=server.pk).update(status=status)
    server.refresh_from_db()
    refused = _refused(access, server, snapshot=snapshot)
    assert refused.status == 409 and [p.message for p in refused.problems] == [words]


def test_an_image_larger_than_the_disk_is_refused(access, server, snapshot):
    Snapshot.objects.filter(pk=snapshot.pk).update(min_disk_gib=server.root_disk_gib + 1)
    snapshot.refresh_from_db()
    refused = _refused(access, server, snapshot=snapshot)
    assert refused.status == 400
    assert (
        refused.message
        == f"“before-upgrade” needs a disk of at least 51 GiB; web's disk is {server.root_disk_gib} GiB."
    )


def test_a_wrong_name_and_a_busy_server_are_refused_at_once(access, server, snapshot):
    Instance.objects.filter(pk=server.pk).update(status="resizing")
    server.refresh_from_db()
    refused = _refused(access, server, snapshot=snapshot, confirm_name="wbe")
    assert refused.status == 400
    assert [(p.field, p.message) for p in refused.problems] == [
        ("confirm_name", "Type the server's name “web” to confirm."),
        (None, "web is being resized: its disk can't be restored now."),
    ]


def test_a_zone_without_rebuild_says_so(access, server, snapshot):
    server.zone.backend_settings = {"absent": ["server_rebuild"]}
    server.zone.save()
    refused = _refused(access, server, snapshot=snapshot)
    assert refused.status == 409
    assert (
        refused.message == "Restoring a server's disk from a snapshot or backup is not available in fra1-a."
    )


def test_a_viewer_may_not_restore(server, snapshot, project, viewer):
    access = project_access(viewer, project.organization.slug, project.slug)
    with pytest.raises(PermissionDenied):
        _restore(access, server, snapshot=snapshot)
    assert not Operation.objects.filter(action="rebuild").exists()


def test_the_reconciler_settles_a_server_left_restoring(access, server, snapshot):
    op = _restore(access, server, snapshot=snapshot)
    drive(op)
    # A worker died between the cloud's answer and closing the operation, and it was closed by hand.
    Instance.objects.filter(pk=server.pk).update(status="rebuilding")
    reconcile()
    server.refresh_from_db()
    assert server.status == "running"
