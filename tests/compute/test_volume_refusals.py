"""Every request the volume services refuse: a clear 4xx that lists every reason at once, and
nothing changed — no row, no operation, no audit event, nothing asked of the cloud."""

from __future__ import annotations

import pytest

from portal.audit.models import AuditEvent
from portal.compute.models import Operation, Volume
from portal.compute.services import ComputeRefused
from portal.compute.services import volumes as volume_services
from tests.factories import InstanceFactory


@pytest.fixture
def fra(catalog):
    return catalog["fra1-a"]


@pytest.fixture
def volume(project, fra):
    return Volume.objects.create(
        project=project, name="data", zone=fra, size_gib=50, status="available", backend_id="v-1"
    )


@pytest.fixture
def server(project, fra):
    return InstanceFactory(project=project, name="web-1", zone=fra, status="running", backend_id="s-1")


def _snapshot(volume):
    volume.refresh_from_db()
    return (volume.status, volume.attached_to_id, volume.size_gib, volume.device)


def _refused(call, volume=None) -> ComputeRefused:
    before = _snapshot(volume) if volume else None
    audits, ops = AuditEvent.objects.count(), Operation.objects.count()
    with pytest.raises(ComputeRefused) as refused:
        call()
    assert (AuditEvent.objects.count(), Operation.objects.count()) == (audits, ops), "something was recorded"
    if volume:
        assert _snapshot(volume) == before, "the volume changed"
    return refused.value


def _messages(refused: ComputeRefused) -> list[str]:
    return [problem.message for problem in refused.problems]


def _absent(zone, *capabilities):
    zone.backend_settings = {**zone.backend_settings, "absent": list(capabilities)}
    zone.save()


def test_attach_to_a_server_in_another_zone(access, volume, project, catalog):
    far = InstanceFactory(project=project, name="far", zone=catalog["iad1-a"], status="running")
    refused = _refused(
        lambda: volume_services.volume_attach(access=access, volume=volume, instance=far), volume
    )
    assert refused.status == 409
    assert _messages(refused) == [
        "data is in fra1-a and far in iad1-a: a volume can only be attached to a server in its own zone."
    ]


@pytest.mark.parametrize("status", ["pending", "provisioning", "stopping", "rebooting", "resizing", "error"])
def test_attach_to_a_transitioning_or_failed_server(access, volume, project, fra, status):
    busy = InstanceFactory(project=project, name="busy", zone=fra, status=status)
    refused = _refused(
        lambda: volume_services.volume_attach(access=access, volume=volume, instance=busy), volume
    )
    assert (
        refused.status == 409 and "volumes can be attached to running or stopped servers" in refused.message
    )


def test_attach_to_a_terminated_server(access, volume, project, fra):
    gone = InstanceFactory(project=project, name="gone", zone=fra, status="terminated")
    refused = _refused(
        lambda: volume_services.volume_attach(access=access, volume=volume, instance=gone), volume
    )
    assert refused.status == 400 and refused.message == "Choose one of the project's servers."


def test_attach_twice(access, volume, server):
    Volume.objects.filter(pk=volume.pk).update(status="in_use", attached_to=server, device="/dev/vdb")
    refused = _refused(
        lambda: volume_services.volume_attach(access=access, volume=volume, instance=server), volume
    )
    assert refused.status == 409 and _messages(refused) == ["data is already attached to web-1."]


def test_attach_past_the_per_server_limit(access, volume, project, fra, server, settings):
    settings.COMPUTE_VOLUMES_PER_SERVER = 2
    for n in range(2):
        Volume.objects.create(
            project=project, name=f"d{n}", zone=fra, size_gib=1, status="in_use", attached_to=server
        )
    refused = _refused(
        lambda: volume_services.volume_attach(access=access, volume=volume, instance=server), volume
    )
    assert refused.status == 409
    assert _messages(refused) == [
        "web-1 already has 2 volumes: a server in fra1-a takes at most 2. Detach one first."
    ]


def test_every_reason_at_once(access, volume, project, catalog, settings):
    settings.COMPUTE_VOLUMES_PER_SERVER = 1
    far = InstanceFactory(project=project, name="far", zone=catalog["iad1-a"], status="rebooting")
    Volume.objects.create(project=project, name="other", zone=catalog["iad1-a"], size_gib=1, attached_to=far)
    Volume.objects.filter(pk=volume.pk).update(status="extending")
    refused = _refused(
        lambda: volume_services.volume_attach(access=access, volume=volume, instance=far), volume
    )
    assert _messages(refused) == [
        "data is being extended: wait until that is done.",
        "data is in fra1-a and far in iad1-a: a volume can only be attached to a server in its own zone.",
        "far is rebooting: volumes can be attached to running or stopped servers.",
        "far already has 1 volumes: a server in iad1-a takes at most 1. Detach one first.",
    ]


@pytest.mark.parametrize("size", [50, 10])
def test_extend_to_a_smaller_or_equal_size(access, volume, size):
    refused = _refused(
        lambda: volume_services.volume_extend(access=access, volume=volume, size_gib=size), volume
    )
    assert refused.status == 400 and refused.field == "size_gib"
    assert _messages(refused) == ["data is 50 GiB: choose a larger size (volumes only grow)."]


def test_extend_where_the_zone_cannot_grow_volumes_and_too_small_at_once(access, volume, fra):
    _absent(fra, "volume_extend")
    refused = _refused(
        lambda: volume_services.volume_extend(access=access, volume=volume, size_gib=40), volume
    )
    assert refused.status == 400  # the input is wrong first
    assert _messages(refused) == [
        "data is 50 GiB: choose a larger size (volumes only grow).",
        "Larger volumes are not available in fra1-a.",
    ]


def test_extend_over_quota_changes_nothing(access, volume, project):
    from portal.compute.quota import QuotaExceeded

    project.quota_volume_gib = 60
    project.save()
    with pytest.raises(QuotaExceeded, match="needs 20 GiB, 10 GiB left of 60 GiB"):
        volume_services.volume_extend(access=access, volume=volume, size_gib=70)
    assert _snapshot(volume) == ("available", None, 50, "") and not Operation.objects.exists()


def test_delete_an_attached_volume(access, volume, server):
    Volume.objects.filter(pk=volume.pk).update(status="in_use", attached_to=server)
    refused = _refused(lambda: volume_services.volume_delete(access=access, volume=volume), volume)
    assert refused.status == 409 and refused.message == "data is attached to web-1: detach it first."


def test_delete_while_being_created(access, volume):
    Volume.objects.filter(pk=volume.pk).update(status="creating")
    refused = _refused(lambda: volume_services.volume_delete(access=access, volume=volume), volume)
    assert refused.status == 409 and refused.message == "data is being created: wait until that is done."


def test_a_zone_without_volumes(access, volume, server, fra):
    _absent(fra, "volumes")
    refused = _refused(
        lambda: volume_services.volume_attach(access=access, volume=volume, instance=server), volume
    )
    assert _messages(refused) == ["Volumes are not available in fra1-a."]
    count = Volume.objects.count()
    refused = _refused(
        lambda: volume_services.volume_create(access=access, name="new", zone=fra, size_gib=10)
    )
    assert refused.status == 409 and refused.field == "zone"
    assert _messages(refused) == ["Volumes are not available in fra1-a."]
    assert Volume.objects.count() == count


def test_create_lists_a_taken_name_and_a_zone_without_volumes_together(access, volume, fra):
    _absent(fra, "volumes")
    refused = _refused(
        lambda: volume_services.volume_create(access=access, name="data", zone=fra, size_gib=10)
    )
    assert _messages(refused) == [
        "Volumes are not available in fra1-a.",
        "The project already has a volume named “data”.",
    ]


def test_an_absent_capability_is_what_the_simulated_cloud_declares(fra):
    from portal.compute.backends import Capability, get_backend

    _absent(fra, "volume_snapshots")
    assert Capability.VOLUME_SNAPSHOTS not in get_backend(fra.backend).capabilities("fra1-a")
    assert Capability.VOLUMES in get_backend(fra.backend).capabilities("fra1-a")
    assert volume_services.zone_refusal(fra, Capability.VOLUME_SNAPSHOTS) == (
        "Volume snapshots are not available in fra1-a."
    )


def test_a_refused_page_keeps_polling_the_page_not_the_action(project, owner, client_as, fra):
    """A refusal is rendered at the action's address (POST only): the live region polls the
    volume's own page, or the status would never refresh."""
    from django.urls import reverse

    volume = Volume.objects.create(project=project, name="busy", zone=fra, size_gib=1, status="attaching")
    args = [project.organization.slug, project.slug, volume.pk]
    refused = client_as(owner).post(reverse("compute:volume_detach", args=args))
    assert 400 <= refused.status_code < 500
    page = refused.content.decode()
    assert f'hx-get="{reverse("compute:volume_detail", args=args)}"' in page
    assert reverse("compute:volume_detach", args=args) not in page.split('id="volume-live"')[1].split(">")[0]
