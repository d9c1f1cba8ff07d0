"""Volume operations driven through the one pipeline (tests/steps.py) on the simulated cloud: the
status shows the request, the cloud's confirmation changes it, billing follows the cloud, a transient
error is retried, a refusal is shown in the customer's words and leaves what the cloud says."""

from __future__ import annotations

import pytest
from django.utils import timezone

from portal.compute.models import Operation, SimulatedServer, SimulatedVolume, Volume
from portal.compute.services import volumes as volume_services
from portal.metering.models import UsageSegment
from tests.steps import drive, step


@pytest.fixture
def server(launch):
    batch = launch(name="db")
    drive(Operation.objects.get(instance__batch=batch))
    instance = batch.instances.get()
    assert instance.status == "running"
    return instance


@pytest.fixture
def create(access, catalog, knobs, django_capture_on_commit_callbacks):
    def go(name="data", size_gib=10, zone="fra1-a") -> Operation:
        with django_capture_on_commit_callbacks():
            return volume_services.volume_create(
                access=access, name=name, zone=catalog[zone], size_gib=size_gib
            )

    return go


@pytest.fixture
def volume(create) -> Volume:
    op = create()
    drive(op)
    return Volume.objects.get(pk=op.volume_id)


def _segments(volume):
    return list(
        UsageSegment.objects.filter(resource_id=volume.pk)
        .order_by("started_at")
        .values_list("quantity", "ended_at")
    )


def _refresh(obj):
    obj.refresh_from_db()
    return obj


def test_create_is_billed_from_the_clouds_confirmation(create):
    op = create(size_gib=20)
    volume = op.volume
    assert volume.status == "creating" and _segments(volume) == []
    step(op)  # submitted: the cloud is making it
    volume.refresh_from_db()
    assert volume.backend_id and volume.status == "creating" and _segments(volume) == []
    drive(op)
    volume.refresh_from_db()
    assert volume.status == "available" and _refresh(op).state == "succeeded"
    assert SimulatedVolume.objects.get(backend_id=volume.backend_id).size_gib == 20
    assert [q for q, ended in _segments(volume)] == [20] and _segments(volume)[0][1] is None


def test_attach_detach_on_a_running_server(access, volume, server, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        op = volume_services.volume_attach(access=access, volume=volume, instance=server)
    assert _refresh(volume).status == "attaching"
    drive(op)
    volume.refresh_from_db()
    assert (volume.status, volume.attached_to, volume.device) == ("in_use", server, "/dev/vdb")
    cloud = SimulatedVolume.objects.get(backend_id=volume.backend_id)
    assert cloud.attached_to == server.backend_id

    with django_capture_on_commit_callbacks():
        op = volume_services.volume_detach(access=access, volume=volume)
    assert _refresh(volume).status == "detaching"
    drive(op)
    volume.refresh_from_db()
    assert (volume.status, volume.attached_to, volume.device) == ("available", None, "")
    assert SimulatedVolume.objects.get(backend_id=volume.backend_id).attached_to == ""


def test_extend_bills_the_new_size_only_once_the_cloud_has_it(
    access, volume, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        op = volume_services.volume_extend(access=access, volume=volume, size_gib=25)
    volume.refresh_from_db()
    assert (volume.status, volume.size_gib) == ("extending", 10)
    assert [q for q, ended in _segments(volume) if ended is None] == [10]
    drive(op)
    volume.refresh_from_db()
    assert (volume.status, volume.size_gib) == ("available", 25)
    segments = _segments(volume)
    assert [q for q, _ in segments] == [10, 25] and segments[0][1] is not None and segments[1][1] is None


def test_delete_ends_billing_when_the_cloud_no_longer_finds_it(
    access, volume, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        op = volume_services.volume_delete(access=access, volume=volume)
    assert _refresh(volume).status == "deleting" and _segments(volume)[0][1] is None  # still billed
    drive(op)
    volume.refresh_from_db()
    assert volume.status == "deleted" and volume.deleted_at
    assert all(ended is not None for _, ended in _segments(volume))
    assert not SimulatedVolume.objects.filter(backend_id=volume.backend_id, deleted=False).exists()


def test_a_transient_error_is_retried(create, knobs):
    op = create()
    knobs.transient_error_rate = 1.0
    knobs.save()
    step(op)
    assert _refresh(op).attempts == 1 and op.state == "running" and not op.volume.backend_id
    knobs.transient_error_rate = 0
    knobs.save()
    drive(op)
    assert _refresh(op).state == "succeeded" and _refresh(op.volume).status == "available"
    assert SimulatedVolume.objects.count() == 1


def test_a_refused_attach_leaves_the_volume_as_the_cloud_has_it(
    access, volume, server, django_capture_on_commit_callbacks
):
    SimulatedServer.objects.filter(backend_id=server.backend_id).update(state="building")  # not attachable
    with django_capture_on_commit_callbacks():
        op = volume_services.volume_attach(access=access, volume=volume, instance=server)
    drive(op)
    op.refresh_from_db()
    volume.refresh_from_db()
    assert op.state == "failed" and "can't take a volume now" in op.error_message
    assert (volume.status, volume.attached_to, volume.fault_message) == ("available", None, "")
    assert _segments(volume)[-1][1] is None  # still billed: it still exists


def test_a_failed_create_is_an_error_that_holds_nothing(create, monkeypatch):
    from portal.compute.backends.base import Rejected
    from portal.compute.backends.simulated import SimulatedBackend
    from portal.compute.quota import project_usage

    def refuse(self, spec):
        raise Rejected("The storage pool is full in fra1-a.")

    monkeypatch.setattr(SimulatedBackend, "create_volume", refuse)
    op = create(size_gib=30)
    drive(op)
    volume = _refresh(op.volume)
    assert (volume.status, volume.fault_message) == ("error", "The storage pool is full in fra1-a.")
    assert _segments(volume) == [] and project_usage(volume.project).volume_gib == 0


def test_a_volume_gone_from_the_cloud_during_an_extend_is_an_error(
    access, volume, django_capture_on_commit_callbacks
):
    SimulatedVolume.objects.filter(backend_id=volume.backend_id).update(deleted=True)
    with django_capture_on_commit_callbacks():
        op = volume_services.volume_extend(access=access, volume=volume, size_gib=20)
    drive(op)
    volume.refresh_from_db()
    assert _refresh(op).state == "failed" and op.error_message == "The volume no longer exists in the cloud."
    assert (volume.status, volume.backend_id) == ("error", "")
    assert all(ended is not None for _, ended in _segments(volume))


def test_terminating_the_server_keeps_its_volumes(access, volume, server, django_capture_on_commit_callbacks):
    from portal.compute import services

    with django_capture_on_commit_callbacks():
        drive(volume_services.volume_attach(access=access, volume=volume, instance=server))
        op = services.instance_action(
            access=access, instance=server, action="terminate", confirm_name=server.name
        )
    drive(op)
    volume.refresh_from_db()
    assert (volume.status, volume.attached_to, volume.device) == ("available", None, "")
    assert SimulatedVolume.objects.get(backend_id=volume.backend_id).attached_to == ""


def test_a_volume_the_cloud_is_still_making_is_neither_available_nor_billed(create, knobs):
    knobs.action_seconds = 600
    knobs.save()
    op = create()
    step(op)  # submitted
    step(op)  # looked: the cloud says creating
    volume = _refresh(op.volume)
    assert volume.status == "creating" and _refresh(op).state == "running" and _segments(volume) == []
    SimulatedVolume.objects.filter(backend_id=volume.backend_id).update(transition_until=timezone.now())
    drive(op)
    assert _refresh(volume).status == "available" and len(_segments(volume)) == 1
