"""The reconciler and volumes: a volume changed in the cloud outside the portal is recorded (and its
billing follows), a volume with our key that the portal does not know is flagged, lost and stuck
volume operations are taken over like servers'."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.audit.models import AuditAction, AuditEvent
from portal.compute import reconciler
from portal.compute.backends import STORAGE_METADATA_KEY
from portal.compute.models import BackendOrphan, Operation, SimulatedVolume, Volume
from portal.compute.services import volumes as volume_services
from portal.metering.models import UsageSegment
from tests.steps import drive


@pytest.fixture
def server(launch):
    batch = launch(name="db")
    drive(Operation.objects.get(instance__batch=batch))
    return batch.instances.get()


@pytest.fixture
def make_volume(access, catalog, knobs, django_capture_on_commit_callbacks):
    def go(name="data", size_gib=10) -> Volume:
        with django_capture_on_commit_callbacks():
            op = volume_services.volume_create(
                access=access, name=name, zone=catalog["fra1-a"], size_gib=size_gib
            )
        drive(op)
        return Volume.objects.get(pk=op.volume_id)

    return go


def _open(volume):
    return list(
        UsageSegment.objects.filter(resource_id=volume.pk, ended_at=None).values_list("quantity", flat=True)
    )


def _outside(volume):
    return AuditEvent.objects.filter(action=AuditAction.VOLUME_CHANGED_OUTSIDE, target_id=str(volume.pk))


def test_a_volume_deleted_in_the_cloud_becomes_an_error_and_stops_being_billed(make_volume):
    volume = make_volume()
    SimulatedVolume.objects.filter(backend_id=volume.backend_id).update(deleted=True)
    report = reconciler.reconcile()
    volume.refresh_from_db()
    assert report.drifted == [str(volume.pk)]
    assert (volume.status, volume.fault_message, volume.backend_id) == (
        "error",
        "The volume disappeared from the cloud.",
        "",
    )
    assert _open(volume) == [] and _outside(volume).get().changes["status"] == ["available", "error"]
    assert reconciler.reconcile().drifted == []  # once


def test_a_volume_in_error_in_the_cloud(make_volume):
    volume = make_volume()
    SimulatedVolume.objects.filter(backend_id=volume.backend_id).update(state="error", fault="Disk failure.")
    reconciler.reconcile()
    volume.refresh_from_db()
    assert (volume.status, volume.fault_message) == ("error", "Disk failure.") and _open(volume) == []


def test_an_attachment_changed_in_the_cloud_is_recorded(make_volume, server):
    volume = make_volume()
    SimulatedVolume.objects.filter(backend_id=volume.backend_id).update(
        state="in_use", attached_to=server.backend_id, device="/dev/vdc"
    )
    reconciler.reconcile()
    volume.refresh_from_db()
    assert (volume.status, volume.attached_to, volume.device) == ("in_use", server, "/dev/vdc")
    SimulatedVolume.objects.filter(backend_id=volume.backend_id).update(
        state="available", attached_to="", device=""
    )
    reconciler.reconcile()
    volume.refresh_from_db()
    assert (volume.status, volume.attached_to, volume.device) == ("available", None, "")
    assert _outside(volume).count() == 2 and _open(volume) == [10]  # billed throughout


def test_a_volume_grown_in_the_cloud_is_billed_at_its_size(make_volume):
    volume = make_volume()
    SimulatedVolume.objects.filter(backend_id=volume.backend_id).update(size_gib=40)
    reconciler.reconcile()
    volume.refresh_from_db()
    assert volume.size_gib == 40 and _open(volume) == [40]


def test_a_volume_with_work_under_way_is_left_to_its_operation(
    access, make_volume, django_capture_on_commit_callbacks
):
    volume = make_volume()
    with django_capture_on_commit_callbacks():
        volume_services.volume_extend(access=access, volume=volume, size_gib=20)
    SimulatedVolume.objects.filter(backend_id=volume.backend_id).update(deleted=True)
    assert reconciler.reconcile().drifted == []
    assert Volume.objects.get(pk=volume.pk).status == "extending"


def test_a_volume_with_our_key_but_no_row_is_flagged_once(make_volume):
    volume = make_volume()
    stray = SimulatedVolume.objects.create(
        backend_id="simvol-stray",
        idempotency_key="7e0c4c8a-7f0e-4bb4-9c1e-000000000001",
        zone_code="fra1-a",
        name="lost",
        size_gib=5,
        state="available",
        metadata={STORAGE_METADATA_KEY: "7e0c4c8a-7f0e-4bb4-9c1e-000000000001"},
    )
    report = reconciler.reconcile()
    assert report.orphans == [stray.backend_id]
    orphan = BackendOrphan.objects.get()
    assert (orphan.kind, orphan.backend_id, orphan.name) == ("volume", "simvol-stray", "lost")
    assert reconciler.reconcile().orphans == []
    Volume.objects.filter(pk=volume.pk).update(status="deleted")  # the portal forgot one it made
    assert reconciler.reconcile().orphans == [volume.backend_id]


def test_a_lost_volume_operation_is_taken_over_and_a_stuck_one_failed(
    make_volume, access, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        op = volume_services.volume_create(access=access, name="late", zone=make_volume().zone, size_gib=1)
    Operation.objects.filter(pk=op.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    report = reconciler.reconcile()
    assert [(op_id, backend) for op_id, _, backend in report.lost] == [(op.pk, "simulated")]
    Operation.objects.filter(pk=op.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    assert reconciler.reconcile().timed_out == [str(op.pk)]
    op.refresh_from_db()
    assert op.state == "failed" and Volume.objects.get(pk=op.volume_id).status == "error"
