"""Snapshots through the one pipeline: a server's disk becomes the project's image, new servers boot
from it (in its zone, in this project only), a volume's content is kept; refusals change nothing;
creation is idempotent by the Snapshot's UUID; deletion stops billing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied

from portal.audit.models import AuditAction, AuditEvent
from portal.budgets.selectors import project_forecast
from portal.catalog.models import Flavor, Image
from portal.compute import services
from portal.compute.backends import get_backend
from portal.compute.models import (
    Instance,
    Operation,
    SimulatedServer,
    SimulatedSnapshot,
    Snapshot,
    SnapshotKind,
    SnapshotStatus,
    Volume,
)
from portal.compute.operations import OPERATIONS
from portal.compute.operations.snapshots import snapshot_spec
from portal.compute.operations.volumes import volume_spec
from portal.compute.services.common import ComputeRefused
from portal.compute.services.snapshots import image_delete, snapshot_create, snapshot_delete
from portal.metering.models import Meter, UsageSegment
from portal.tenancy.access import project_access
from tests.factories import ProjectFactory
from tests.steps import drive


@pytest.fixture
def server(launch):
    batch = launch(name="web")
    drive(Operation.objects.get(instance__batch=batch))
    instance = Instance.objects.get(batch=batch)
    assert instance.status == "running"
    return instance


def _take(access, **source) -> Snapshot:
    op = snapshot_create(access=access, name=source.pop("name", "before-upgrade"), **source)
    drive(op)
    return Snapshot.objects.get(pk=op.snapshot_id)


def test_a_server_snapshot_becomes_a_project_image(access, server, project):
    snapshot = _take(access, instance=server)
    assert (snapshot.status, snapshot.kind, snapshot.zone) == (
        SnapshotStatus.AVAILABLE,
        "server",
        server.zone,
    )
    assert snapshot.size_gib == server.root_disk_gib and snapshot.image_ref
    image = snapshot.image
    assert image.project == project and image.is_active
    assert image.backend_refs == {"fra1-a": snapshot.image_ref}
    assert list(image.zones.values_list("code", flat=True)) == ["fra1-a"]
    assert image.os_family == server.image.os_family and image.min_disk_gib == server.root_disk_gib
    assert list(Image.objects.for_project(project).filter(project=project)) == [image]
    assert image not in Image.objects.public()
    event = AuditEvent.objects.get(action=AuditAction.SNAPSHOT_CREATED)
    assert event.changes["of"] == [None, "web"]


def test_a_new_server_boots_from_the_snapshot(access, server, launch):
    snapshot = _take(access, instance=server)
    batch = launch(name="copy", image=snapshot.image.name, root_disk_gib=server.root_disk_gib)
    drive(Operation.objects.get(instance__batch=batch))
    copy = Instance.objects.get(batch=batch)
    assert copy.status == "running" and copy.image == snapshot.image
    assert SimulatedServer.objects.get(backend_id=copy.backend_id).image_ref == snapshot.image_ref


def test_the_snapshot_image_is_offered_only_in_its_zone(access, server, catalog):
    snapshot = _take(access, instance=server)
    problems = services.launch_problems(
        access.project,
        zone=catalog["ams1-a"],
        image=snapshot.image,
        flavor=Flavor.objects.get(code="s-1vcpu-2gb"),
    )
    assert [p.field for p in problems] == ["image"]
    assert "is not offered in ams1-a" in problems[0].message


def test_another_project_cannot_launch_from_it(access, server, org, owner, catalog):
    snapshot = _take(access, instance=server)
    other = ProjectFactory(organization=org, name="Other", slug="other-project")
    problems = services.launch_problems(other, zone=catalog["fra1-a"], image=snapshot.image)
    assert [(p.field, p.message) for p in problems] == [("image", "Choose an image of this project.")]
    assert snapshot.image not in Image.objects.for_project(other)


def test_a_volume_snapshot(access, project, catalog, knobs, owner):
    volume = Volume.objects.create(project=project, name="data", zone=catalog["fra1-a"], size_gib=20)
    volume.backend_id = get_backend("simulated").create_volume(volume_spec(volume)).backend_id
    volume.status = "available"
    volume.save()
    snapshot = _take(access, volume=volume, name="data-copy")
    assert (snapshot.kind, snapshot.status, snapshot.size_gib, snapshot.image) == (
        SnapshotKind.VOLUME,
        SnapshotStatus.AVAILABLE,
        20,
        None,
    )


def test_the_snapshot_is_billed_while_it_exists(access, server, settings):
    snapshot = _take(access, instance=server)
    segment = UsageSegment.objects.get(resource_id=snapshot.pk)
    assert (segment.meter, segment.quantity, segment.unit_price, segment.ended_at) == (
        Meter.SNAPSHOT,
        Decimal(server.root_disk_gib),
        settings.PORTAL_SNAPSHOT_PRICE_GIB_HOUR,
        None,
    )
    drive(snapshot_delete(access=access, snapshot=snapshot))
    snapshot.refresh_from_db()
    assert snapshot.status == SnapshotStatus.DELETED and snapshot.deleted_at
    assert UsageSegment.objects.get(resource_id=snapshot.pk).ended_at is not None
    assert not Image.objects.get(pk=snapshot.image_id).is_active
    assert not SimulatedSnapshot.objects.filter(backend_id=snapshot.backend_id, deleted=False).exists()


def test_the_budget_forecast_counts_a_snapshot_while_it_exists(access, server, settings):
    before = project_forecast(server.project).run_rate
    snapshot = _take(access, instance=server)
    share = server.root_disk_gib * settings.PORTAL_SNAPSHOT_PRICE_GIB_HOUR
    assert project_forecast(server.project).run_rate == before + share
    drive(snapshot_delete(access=access, snapshot=snapshot))
    assert project_forecast(server.project).run_rate == before


def test_deleting_twice_returns_the_same_operation(access, server):
    snapshot = _take(access, instance=server)
    first = snapshot_delete(access=access, snapshot=snapshot)
    assert snapshot_delete(access=access, snapshot=snapshot) == first
    assert Operation.objects.filter(snapshot=snapshot, action="snapshot_delete").count() == 1


def test_a_retried_submit_adopts_the_first_snapshot(access, server):
    op = snapshot_create(access=access, instance=server, name="once")
    # The worker called the cloud, then died before saving anything.
    made = get_backend("simulated").create_snapshot(snapshot_spec(op.snapshot))
    drive(op)
    snapshot = Snapshot.objects.get(pk=op.snapshot_id)
    assert snapshot.backend_id == made.backend_id
    assert SimulatedSnapshot.objects.filter(idempotency_key=str(snapshot.pk)).count() == 1
    # And a repeated submit of the same operation asks for no second one either.
    OPERATIONS["snapshot_create"].submit(get_backend("simulated"), [op])
    assert SimulatedSnapshot.objects.filter(idempotency_key=str(snapshot.pk)).count() == 1


# --- Refusals: a clear reason, nothing changed ------------------------------------------------


def _refused(access, **source) -> ComputeRefused:
    before = (Snapshot.objects.count(), Operation.objects.count(), AuditEvent.objects.count())
    with pytest.raises(ComputeRefused) as refused:
        snapshot_create(access=access, name=source.pop("name", "snap"), **source)
    assert (Snapshot.objects.count(), Operation.objects.count(), AuditEvent.objects.count()) == before
    return refused.value


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("resizing", "web is being resized: it can't be snapshotted now."),
        ("terminating", "web is being terminated: it can't be snapshotted now."),
        ("provisioning", "web is still being created: it can't be snapshotted now."),
    ],
)
def test_a_busy_server_is_refused_with_the_reason(access, server, status, words):
    Instance.objects.filter(pk=server.pk).update(status=status)
    refused = _refused(access, instance=server)
    assert refused.status == 409 and [p.message for p in refused.problems] == [words]


def test_a_zone_without_server_snapshots_refuses_in_plain_words(access, server):
    server.zone.backend_settings = {"absent": ["server_snapshots"]}
    server.zone.save()
    refused = _refused(access, instance=server)
    assert refused.problems[0].message == "Server snapshots are not available in fra1-a."


def test_every_problem_at_once(access, server):
    server.zone.backend_settings = {"absent": ["server_snapshots"]}
    server.zone.save()
    Instance.objects.filter(pk=server.pk).update(status="resizing")
    refused = _refused(access, instance=server, name="x" * 64)
    assert refused.status == 400
    assert [p.message for p in refused.problems] == [
        "The name can be at most 63 characters.",
        "Server snapshots are not available in fra1-a.",
        "web is being resized: it can't be snapshotted now.",
    ]


def test_a_second_snapshot_while_one_is_taken_is_refused(access, server):
    snapshot_create(access=access, instance=server, name="first")
    refused = _refused(access, instance=server, name="second")
    assert refused.problems[0].message == "A snapshot of web is being taken: wait until it is done."


def test_a_name_taken_is_refused(access, server):
    _take(access, instance=server, name="same")
    refused = _refused(access, instance=server, name="same")
    assert refused.problems[0].message == "The project already has a snapshot named “same”."


def test_a_viewer_may_not_take_one(server, project, viewer):
    access = project_access(viewer, project.organization.slug, project.slug)
    with pytest.raises(PermissionDenied):
        snapshot_create(access=access, instance=server, name="nope")
    assert not Snapshot.objects.exists()


def test_a_snapshot_being_taken_is_not_deleted(access, server):
    op = snapshot_create(access=access, instance=server, name="busy")
    with pytest.raises(ComputeRefused) as refused:
        snapshot_delete(access=access, snapshot=op.snapshot)
    assert refused.value.message == "busy is still being taken: delete it once that is done."
    assert Snapshot.objects.get(pk=op.snapshot_id).status == SnapshotStatus.CREATING


def test_an_image_an_operator_uploaded_is_not_deleted_by_the_customer(access, project):
    image = Image.objects.create(name="Golden", os_family="debian", version="1", project=project)
    with pytest.raises(ComputeRefused) as refused:
        image_delete(access=access, image=image)
    assert refused.value.message == "Golden was provided by your operator: ask them to remove it."
    assert Image.objects.get(pk=image.pk).is_active


def test_a_failed_snapshot_is_an_error_and_not_billed(access, server):
    op = snapshot_create(access=access, instance=server, name="doomed")
    SimulatedServer.objects.filter(backend_id=server.backend_id).update(deleted=True)  # gone meanwhile
    drive(op)
    snapshot = Snapshot.objects.get(pk=op.snapshot_id)
    assert snapshot.status == SnapshotStatus.ERROR
    assert snapshot.fault_message == "The server no longer exists in the cloud."
    assert not UsageSegment.objects.filter(resource_id=snapshot.pk).exists()


def test_the_usage_page_shows_a_snapshots_line(access, server, project, owner, client_as):
    from datetime import timedelta

    from django.urls import reverse

    snapshot = _take(access, instance=server)
    UsageSegment.objects.filter(resource_id=snapshot.pk).update(
        started_at=snapshot.created_at - timedelta(hours=30)
    )
    page = (
        client_as(owner)
        .get(reverse("metering:project_usage", args=[project.organization.slug, project.slug]))
        .content.decode()
    )
    assert "Snapshots" in page and "before-upgrade" in page
