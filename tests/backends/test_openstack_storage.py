"""Storage on OpenStack beyond the contract: Cinder's and Glance's statuses in the portal's terms,
refusals in the customer's words, adoption after a worker died between the cloud call and saving
its answer, and what a zone cannot do without Cinder or Glance."""

from __future__ import annotations

import time
import uuid

import pytest

from portal.compute.backends.base import Capability, NotFound, Rejected, Transient
from portal.compute.backends.openstack import OpenStackBackend
from portal.compute.backends.openstack_mapping import (
    VOLUME_FAULTS,
    snapshot_state,
    volume_fault,
    volume_state,
)
from portal.compute.backends.storage import (
    STORAGE_METADATA_KEY,
    SnapshotCloudState,
    SnapshotSource,
    SnapshotSpec,
    VolumeCloudState,
    VolumeSpec,
)
from tests.backends.fake_openstack import PASSWORD, REGION, backend_options
from tests.backends.openstack_specs import B, nova_id, settle, spec

V = VolumeCloudState
S = SnapshotCloudState
WITHOUT_CINDER = pytest.mark.parametrize("fake_openstack", [{"without": ["volume"]}], indirect=True)
WITHOUT_GLANCE = pytest.mark.parametrize("fake_openstack", [{"without": ["image"]}], indirect=True)


def volume_spec(zone: str, **overrides) -> VolumeSpec:
    values = {"idempotency_key": str(uuid.uuid4()), "name": "data", "zone": zone, "size_gib": 1}
    values.update(overrides)
    return VolumeSpec(**values)


def until(look, want, timeout: float = 5):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = look()
        if not seen or seen[-1] != state.state:
            seen.append(state.state)
        if state.state == want:
            return state
        time.sleep(0.05)
    pytest.fail(f"never reached {want}: {seen}")


def available_volume(backend, zone: str, **overrides):
    volume = backend.create_volume(volume_spec(zone, **overrides))
    return until(lambda: backend.get_volume(volume.backend_id), V.AVAILABLE)


def running_server(backend, zone: str, **overrides):
    server = backend.create_server(spec(zone, **overrides))
    settle(backend, server.backend_id, B.RUNNING)
    return server


# --- statuses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "attached", "want"),
    [
        ("creating", False, V.CREATING),
        ("downloading", False, V.CREATING),
        ("available", False, V.AVAILABLE),
        ("reserved", False, V.ATTACHING),
        ("attaching", False, V.ATTACHING),
        ("in-use", True, V.IN_USE),
        ("detaching", True, V.DETACHING),
        ("extending", False, V.EXTENDING),
        ("deleting", False, V.DELETING),
        ("error", False, V.ERROR),
        ("error_deleting", False, V.ERROR),
        ("error_extending", True, V.ERROR),
        ("error_restoring", False, V.ERROR),
        # Busy with something the portal did not ask for: where it was, by its attachments.
        ("backing-up", True, V.IN_USE),
        ("uploading", False, V.AVAILABLE),
        ("retyping", False, V.AVAILABLE),
        ("maintenance", True, V.IN_USE),
    ],
)
def test_cinder_volume_statuses(status, attached, want):
    assert volume_state(status, attached) == want


def test_a_failed_extend_says_the_data_is_unchanged():
    assert volume_fault("error_extending") == VOLUME_FAULTS["error_extending"]
    assert "data is unchanged" in volume_fault("error_extending")
    assert volume_fault("available") == ""


@pytest.mark.parametrize(
    ("status", "image", "want"),
    [
        ("queued", True, S.CREATING),
        ("saving", True, S.CREATING),
        ("active", True, S.AVAILABLE),
        ("pending_delete", True, S.DELETING),
        ("killed", True, S.ERROR),
        ("deactivated", True, S.ERROR),
        ("creating", False, S.CREATING),
        ("available", False, S.AVAILABLE),
        ("backing-up", False, S.AVAILABLE),
        ("deleting", False, S.DELETING),
        ("error", False, S.ERROR),
        ("error_deleting", False, S.ERROR),
    ],
)
def test_glance_and_cinder_snapshot_statuses(status, image, want):
    assert snapshot_state(status, image=image) == want


def test_an_unknown_snapshot_status_is_transient():
    with pytest.raises(Transient):
        snapshot_state("exploding", image=True)


def test_a_volume_that_fails_to_build_reads_in_plain_words(openstack_backend):
    backend, zone = openstack_backend
    volume = backend.create_volume(volume_spec(zone, name="data-cindererror"))
    failed = until(lambda: backend.get_volume(volume.backend_id), V.ERROR)
    assert failed.fault == VOLUME_FAULTS["error"]


# --- errors ---------------------------------------------------------------------------------------


def test_a_503_from_cinder_is_transient(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    volume = available_volume(backend, zone)
    fake_openstack.fail_next(1, path="/volume")
    with pytest.raises(Transient) as busy:
        backend.get_volume(volume.backend_id)
    assert "503" in busy.value.detail
    assert backend.get_volume(volume.backend_id).state == V.AVAILABLE


def test_a_503_from_glance_is_transient(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    server = running_server(backend, zone)
    snapshot = backend.create_snapshot(
        SnapshotSpec(str(uuid.uuid4()), "img", zone, SnapshotSource.SERVER, server.backend_id)
    )
    fake_openstack.fail_next(1, path="/image")
    with pytest.raises(Transient):
        backend.get_snapshot(snapshot.backend_id)


def test_over_the_gigabytes_quota_is_refused_in_plain_words(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    fake_openstack.volume.quota_gigabytes = 10
    with pytest.raises(Rejected) as refused:
        backend.create_volume(volume_spec(zone, size_gib=20))
    assert refused.value.user_message.startswith("This zone has reached its storage limit")
    assert "VolumeSizeExceedsAvailableQuota" in refused.value.detail
    assert fake_openstack.volume.volumes == {}


def test_a_volume_smaller_than_its_snapshot_is_refused(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    volume = available_volume(backend, zone, size_gib=3)
    snapshot = backend.create_snapshot(
        SnapshotSpec(str(uuid.uuid4()), "s", zone, SnapshotSource.VOLUME, volume.backend_id)
    )
    until(lambda: backend.get_snapshot(snapshot.backend_id), S.AVAILABLE)
    with pytest.raises(Rejected) as refused:
        backend.create_volume(volume_spec(zone, size_gib=2, source_snapshot=snapshot.backend_id))
    assert (
        refused.value.user_message
        == "A volume made from a snapshot must be at least as large as the snapshot."
    )
    assert len(fake_openstack.volume.volumes) == 1


def test_extend_to_a_smaller_size_is_refused_without_asking_cinder(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    volume = available_volume(backend, zone, size_gib=2)
    with pytest.raises(Rejected) as refused:
        backend.extend_volume(volume.backend_id, 1)
    assert refused.value.user_message == "A volume can only grow: this one is 2 GiB already."
    assert fake_openstack.calls("POST", r"/volumes/[^/]+/action$") == 0
    backend.extend_volume(volume.backend_id, 2)  # already that size: nothing to do
    assert fake_openstack.calls("POST", r"/volumes/[^/]+/action$") == 0


def test_extend_of_a_volume_still_being_created_is_refused_in_plain_words(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    with fake_openstack.frozen():
        volume = backend.create_volume(volume_spec(zone))
        with pytest.raises(Rejected) as refused:
            backend.extend_volume(volume.backend_id, 2)
    assert refused.value.user_message == (
        "The volume is still being created right now, so it can't be made larger. Try again once it has settled."
    )


def test_an_unknown_or_malformed_volume_is_not_found(openstack_backend):
    backend, zone = openstack_backend
    with pytest.raises(NotFound, match="The volume no longer exists"):
        backend.get_volume(f"{zone}:{uuid.uuid4()}")
    with pytest.raises(NotFound):
        backend.get_volume("no-colon")
    with pytest.raises(NotFound, match="The snapshot no longer exists"):
        backend.get_snapshot(f"{zone}:image:{uuid.uuid4()}")
    with pytest.raises(NotFound):
        backend.get_snapshot(f"{zone}:volume-snapshot:{uuid.uuid4()}")
    backend.delete_snapshot(f"{zone}:image:{uuid.uuid4()}")  # gone already: not an error
    backend.delete_volume(f"{zone}:{uuid.uuid4()}")


def test_a_missing_cinder_route_is_a_configuration_error_not_a_gone_volume(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    volume = available_volume(backend, zone)
    fake_openstack.remove_route("GET", r"/volumes/[^/]+$")
    with pytest.raises(Rejected, match="not connected"):
        backend.get_volume(volume.backend_id)


# --- attachments ----------------------------------------------------------------------------------


def test_attach_reports_the_device_and_a_deleted_server_frees_the_volume(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    server = running_server(backend, zone)
    volume = available_volume(backend, zone)
    backend.attach_volume(volume.backend_id, server.backend_id)
    backend.attach_volume(volume.backend_id, server.backend_id)  # repeated: attaching already
    attached = until(lambda: backend.get_volume(volume.backend_id), V.IN_USE)
    assert (attached.attached_to, attached.device) == (server.backend_id, "/dev/vdb")
    assert fake_openstack.calls("POST", r"/os-volume_attachments$") == 2
    backend.delete_server(server.backend_id)
    assert backend.get_volume(volume.backend_id).state == V.AVAILABLE


def test_attach_to_a_server_in_another_availability_zone_is_refused(db, fake_openstack, monkeypatch):
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    fake_openstack.volume.availability_zones.add("nova-2")
    zones = {"osl1-a": {"region": REGION, "network": "public", "volume_availability_zone": "nova-2"}}
    backend = OpenStackBackend("openstack", **backend_options(fake_openstack, zones=zones))
    server = running_server(backend, "osl1-a")
    volume = available_volume(backend, "osl1-a")
    with pytest.raises(Rejected) as refused:
        backend.attach_volume(volume.backend_id, server.backend_id)
    assert "different parts of the zone's cloud" in refused.value.user_message
    assert "not in the same availability_zone" in refused.value.detail
    assert backend.get_volume(volume.backend_id).state == V.AVAILABLE
    backend.close()


def test_a_volume_attached_elsewhere_and_a_busy_server_are_refused_in_plain_words(
    openstack_backend, fake_openstack
):
    backend, zone = openstack_backend
    first, second = running_server(backend, zone, name="a"), running_server(backend, zone, name="b")
    volume = available_volume(backend, zone)
    backend.attach_volume(volume.backend_id, first.backend_id)
    until(lambda: backend.get_volume(volume.backend_id), V.IN_USE)
    with pytest.raises(Rejected, match="attached to another server: detach it from there first"):
        backend.attach_volume(volume.backend_id, second.backend_id)
    other = available_volume(backend, zone)
    with fake_openstack.frozen():
        backend.stop_server(second.backend_id)
        with pytest.raises(
            Rejected, match="The server is stopping right now, so the volume can't be attached"
        ):
            backend.attach_volume(other.backend_id, second.backend_id)


def test_delete_of_an_attached_volume_is_refused_and_nothing_changes(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    server = running_server(backend, zone)
    volume = available_volume(backend, zone)
    backend.attach_volume(volume.backend_id, server.backend_id)
    until(lambda: backend.get_volume(volume.backend_id), V.IN_USE)
    with pytest.raises(Rejected) as refused:
        backend.delete_volume(volume.backend_id)
    assert refused.value.user_message == "The volume is attached to a server: detach it before deleting it."
    assert fake_openstack.volume.volumes[volume.backend_id.partition(":")[2]].status == "in-use"


def test_detach_through_a_missing_route_is_not_taken_for_done(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    server = running_server(backend, zone)
    volume = available_volume(backend, zone)
    backend.attach_volume(volume.backend_id, server.backend_id)
    until(lambda: backend.get_volume(volume.backend_id), V.IN_USE)
    fake_openstack.remove_route("DELETE", r"/os-volume_attachments/")
    with pytest.raises(Rejected, match="not connected"):
        backend.detach_volume(volume.backend_id, server.backend_id)


# --- adoption after a crash -----------------------------------------------------------------------


def test_a_volume_created_before_a_crash_is_adopted(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    asked = volume_spec(zone)
    first = backend.create_volume(asked)  # the worker dies here, before saving the id
    again = backend.create_volume(asked)
    assert again.backend_id == first.backend_id
    [volume] = fake_openstack.volume.volumes.values()
    assert volume.metadata == {STORAGE_METADATA_KEY: asked.idempotency_key, "portal-zone": zone}
    assert fake_openstack.calls("POST", r"/volumes$") == 1


def test_snapshots_created_before_a_crash_are_adopted(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    volume = available_volume(backend, zone)
    asked = SnapshotSpec(str(uuid.uuid4()), "s", zone, SnapshotSource.VOLUME, volume.backend_id)
    assert backend.create_snapshot(asked).backend_id == backend.create_snapshot(asked).backend_id
    assert len(fake_openstack.volume.snapshots) == 1

    server = running_server(backend, zone)
    asked = SnapshotSpec(str(uuid.uuid4()), "img", zone, SnapshotSource.SERVER, server.backend_id)
    with fake_openstack.frozen():  # the retry comes while Nova still snapshots the server
        first = backend.create_snapshot(asked)
        assert backend.create_snapshot(asked).backend_id == first.backend_id
    assert fake_openstack.calls("POST", rf"/servers/{nova_id(server.backend_id)}/action$") == 1
    image = fake_openstack.image.images[first.image_ref]
    assert image[STORAGE_METADATA_KEY] == asked.idempotency_key and image["image_type"] == "snapshot"


def test_a_racing_server_snapshot_adopts_the_one_nova_is_taking(
    openstack_backend, fake_openstack, monkeypatch
):
    backend, zone = openstack_backend
    server = running_server(backend, zone)
    asked = SnapshotSpec(str(uuid.uuid4()), "img", zone, SnapshotSource.SERVER, server.backend_id)
    with fake_openstack.frozen():
        first = backend.create_snapshot(asked)
        # The race: a second delivery looked before the first's image existed, so it asks Nova too.
        find, missed = backend._find_snapshot, []

        def find_late(*args):
            if not missed:
                missed.append(True)
                return None
            return find(*args)

        monkeypatch.setattr(backend, "_find_snapshot", find_late)
        assert backend.create_snapshot(asked).backend_id == first.backend_id  # Nova's 409, then adopted
    assert fake_openstack.calls("POST", rf"/servers/{nova_id(server.backend_id)}/action$") == 2
    assert len([i for i in fake_openstack.image.images.values() if i.get("image_type") == "snapshot"]) == 1


def test_a_second_snapshot_while_nova_takes_one_is_refused_in_plain_words(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    server = running_server(backend, zone)
    with fake_openstack.frozen():
        backend.create_snapshot(
            SnapshotSpec(str(uuid.uuid4()), "a", zone, SnapshotSource.SERVER, server.backend_id)
        )
        with pytest.raises(Rejected, match="The server is already being snapshotted right now"):
            backend.create_snapshot(
                SnapshotSpec(str(uuid.uuid4()), "b", zone, SnapshotSource.SERVER, server.backend_id)
            )


# --- server snapshots -----------------------------------------------------------------------------


def test_a_server_snapshot_is_sized_and_keeps_its_servers_disk_as_minimum(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    server = running_server(backend, zone, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)  # a 50 GiB disk
    asked = SnapshotSpec(str(uuid.uuid4()), "img", zone, SnapshotSource.SERVER, server.backend_id)
    snapshot = backend.create_snapshot(asked)
    assert snapshot.state == S.CREATING and snapshot.size_gib == 0
    ready = until(lambda: backend.get_snapshot(snapshot.backend_id), S.AVAILABLE)
    assert (ready.min_disk_gib, ready.size_gib) == (50, 2)  # 1.2 GiB uploaded, billed as 2
    assert [s.backend_id for s in backend.list_snapshots(zone)] == [snapshot.backend_id]
    # A smaller size's 25 GiB disk cannot hold it: Nova refuses, in the customer's words.
    with pytest.raises(Rejected, match="That size's disk is too small for the chosen image"):
        backend.create_server(spec(zone, image_backend_id=ready.image_ref, name="small"))
    clone = backend.create_server(spec(zone, image_backend_id=ready.image_ref, root_disk_gib=60, name="big"))
    settle(backend, clone.backend_id, B.RUNNING)
    [booted] = [s for s in fake_openstack.compute.live_servers() if s.name == "big"]
    assert booted.block_device_mapping[0]["uuid"] == ready.image_ref


def test_a_deleted_server_takes_its_unfinished_snapshot_along(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    server = running_server(backend, zone)
    snapshot = backend.create_snapshot(
        SnapshotSpec(str(uuid.uuid4()), "img", zone, SnapshotSource.SERVER, server.backend_id)
    )
    backend.delete_server(server.backend_id)
    with pytest.raises(NotFound):
        backend.get_snapshot(snapshot.backend_id)


# --- a volume whose snapshots outlive it ----------------------------------------------------------


def test_a_volume_deleted_with_snapshots_is_hidden_then_deleted_after_them(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    volume = available_volume(backend, zone)
    snapshot = backend.create_snapshot(
        SnapshotSpec(str(uuid.uuid4()), "s", zone, SnapshotSource.VOLUME, volume.backend_id)
    )
    until(lambda: backend.get_snapshot(snapshot.backend_id), S.AVAILABLE)
    backend.delete_volume(volume.backend_id)  # Cinder refuses (it has snapshots): hidden instead
    with pytest.raises(NotFound):
        backend.get_volume(volume.backend_id)
    assert backend.list_volumes(zone) == [] and len(fake_openstack.volume.volumes) == 1
    backend.delete_snapshot(snapshot.backend_id)
    deadline = time.monotonic() + 5
    while fake_openstack.volume.snapshots and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(NotFound):
        backend.get_snapshot(snapshot.backend_id)  # gone: the volume that waited for it goes too
    assert fake_openstack.volume.volumes[volume.backend_id.partition(":")[2]].status == "deleting"


# --- zones without Cinder or Glance ---------------------------------------------------------------


@WITHOUT_CINDER
def test_without_cinder_no_volumes_are_declared_or_made(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    capabilities = backend.capabilities(zone)
    assert not capabilities & {Capability.VOLUMES, Capability.VOLUME_EXTEND, Capability.VOLUME_SNAPSHOTS}
    assert Capability.SERVER_SNAPSHOTS in capabilities
    with pytest.raises(Rejected) as refused:
        backend.create_volume(volume_spec(zone))
    assert refused.value.user_message == f"Volumes are not available in {zone}."
    with pytest.raises(Rejected) as refused:
        backend.create_snapshot(
            SnapshotSpec(str(uuid.uuid4()), "s", zone, SnapshotSource.VOLUME, f"{zone}:x")
        )
    assert refused.value.user_message == f"Volume snapshots are not available in {zone}."
    assert backend.list_volumes(zone) == [] and backend.find_volume(zone, "k") is None
    assert "no volumes" in backend.check_health(zone)


@WITHOUT_GLANCE
def test_without_glance_no_server_snapshots_are_declared_or_made(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    capabilities = backend.capabilities(zone)
    assert Capability.SERVER_SNAPSHOTS not in capabilities
    assert Capability.VOLUMES in capabilities
    with pytest.raises(Rejected) as refused:
        backend.create_snapshot(
            SnapshotSpec(str(uuid.uuid4()), "s", zone, SnapshotSource.SERVER, f"{zone}:x")
        )
    assert refused.value.user_message == f"Server snapshots are not available in {zone}."
    assert fake_openstack.calls("POST", r"/action$") == 0
