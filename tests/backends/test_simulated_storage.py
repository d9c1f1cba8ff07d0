"""The simulated cloud's volumes refuse what real clouds refuse, take their time, fail transiently
as the knobs say, and declare capabilities a zone's settings may take away."""

from __future__ import annotations

import uuid

import pytest

from portal.compute.backends import (
    BackendState,
    Capability,
    NotFound,
    Rejected,
    ServerSpec,
    SnapshotSource,
    SnapshotSpec,
    Transient,
    VolumeSpec,
)
from portal.compute.backends.simulated import SimulatedBackend
from portal.compute.models import SimulatedKnobs, SimulatedVolume


@pytest.fixture
def cloud(catalog):
    SimulatedKnobs.objects.create(boot_seconds=0, action_seconds=0, transient_error_rate=0)
    return SimulatedBackend("simulated")


def _server(cloud, zone="fra1-a", **extra):
    spec = ServerSpec(
        idempotency_key=str(uuid.uuid4()),
        name="vm",
        zone=zone,
        flavor="s-1vcpu-1gb",
        vcpus=1,
        ram_gib=1,
        root_disk_gib=25,
        image="Debian 13",
        **extra,
    )
    server = cloud.create_server(spec)
    assert cloud.get_server(server.backend_id).state == BackendState.RUNNING
    return server


def _volume(cloud, zone="fra1-a", size=10):
    volume = cloud.create_volume(VolumeSpec(str(uuid.uuid4()), "data", zone, size))
    cloud.get_volume(volume.backend_id)  # settles
    return volume


def test_attach_to_a_server_in_another_zone_is_rejected(cloud):
    volume, server = _volume(cloud), _server(cloud, zone="iad1-a")
    with pytest.raises(Rejected, match="only be attached to a server in its own zone"):
        cloud.attach_volume(volume.backend_id, server.backend_id)


def test_delete_attached_and_shrink_are_rejected(cloud):
    volume, server = _volume(cloud), _server(cloud)
    cloud.attach_volume(volume.backend_id, server.backend_id)
    assert cloud.get_volume(volume.backend_id).device == "/dev/vdb"
    with pytest.raises(Rejected, match="detach it first"):
        cloud.delete_volume(volume.backend_id)
    with pytest.raises(Rejected, match="only grow"):
        cloud.extend_volume(volume.backend_id, 5)
    cloud.extend_volume(volume.backend_id, 10)  # the same size: nothing to do, not an error


def test_unknown_ids_are_not_found(cloud):
    with pytest.raises(NotFound):
        cloud.get_volume("simvol-nope")
    with pytest.raises(NotFound):
        cloud.attach_volume("simvol-nope", "sim-nope")
    with pytest.raises(NotFound):
        cloud.get_snapshot("simsnap-nope")


def test_a_server_takes_so_many_volumes(cloud, catalog):
    zone = catalog["fra1-a"]
    zone.backend_settings = {"volumes_per_server": 2}
    zone.save()
    server = _server(cloud)
    for _ in range(2):
        cloud.attach_volume(_volume(cloud).backend_id, server.backend_id)
    with pytest.raises(Rejected, match="at most 2 volumes"):
        cloud.attach_volume(_volume(cloud).backend_id, server.backend_id)


def test_a_deleted_server_lets_go_of_its_volumes(cloud):
    volume, server = _volume(cloud), _server(cloud)
    cloud.attach_volume(volume.backend_id, server.backend_id)
    cloud.delete_server(server.backend_id)
    state = cloud.get_volume(volume.backend_id)
    assert (state.state, state.attached_to, state.device) == ("available", "", "")


def test_changes_take_the_knobs_time(cloud):
    SimulatedKnobs.objects.update(action_seconds=60)
    volume = cloud.create_volume(VolumeSpec(str(uuid.uuid4()), "slow", "fra1-a", 1))
    assert cloud.get_volume(volume.backend_id).state == "creating"


def test_transient_errors_as_the_knobs_say(cloud):
    SimulatedKnobs.objects.update(transient_error_rate=1.0)
    with pytest.raises(Transient):
        cloud.create_volume(VolumeSpec(str(uuid.uuid4()), "data", "fra1-a", 1))
    assert not SimulatedVolume.objects.exists()


def test_capabilities_absent_per_zone(cloud, catalog):
    assert cloud.capabilities("fra1-a") == set(Capability) - {Capability.GRAPHICAL_CONSOLE}
    zone = catalog["fra1-a"]
    zone.backend_settings = {"absent": ["volume_snapshots", "volumes"]}
    zone.save()
    assert Capability.VOLUME_SNAPSHOTS not in cloud.capabilities("fra1-a")
    assert Capability.VOLUMES in cloud.capabilities("iad1-a")
    with pytest.raises(Rejected, match=r"Volumes are not available in fra1-a\."):
        cloud.create_volume(VolumeSpec(str(uuid.uuid4()), "data", "fra1-a", 1))
    with pytest.raises(Rejected, match=r"Volume snapshots are not available in fra1-a\."):
        cloud.create_snapshot(SnapshotSpec(str(uuid.uuid4()), "s", "fra1-a", SnapshotSource.VOLUME, "x"))


def test_a_server_snapshot_boots_only_in_its_zone_and_while_it_exists(cloud):
    server = _server(cloud)
    snapshot = cloud.create_snapshot(
        SnapshotSpec(str(uuid.uuid4()), "img", "fra1-a", SnapshotSource.SERVER, server.backend_id)
    )
    ready = cloud.get_snapshot(snapshot.backend_id)
    assert ready.image_ref and ready.min_disk_gib == 25
    _server(cloud, image_backend_id=ready.image_ref)
    with pytest.raises(Rejected, match="in fra1-a"):
        _server(cloud, zone="iad1-a", image_backend_id=ready.image_ref)
    cloud.delete_snapshot(snapshot.backend_id)
    with pytest.raises(Rejected, match="not available to boot from"):
        _server(cloud, image_backend_id=ready.image_ref)
