"""One storage lifecycle, every backend that declares it: volumes created, attached to a running
server, extended, detached, snapshotted and deleted; a server's disk snapshotted into an image a new
server boots from. The same fixtures as test_contract.py (conftest's `cloud` yields `(backend, zone_code)`),
polling the way the runner does (no backend call waits).
"""

from __future__ import annotations

import time
import uuid

import pytest

from portal.compute.backends import (
    REBUILD_METADATA_KEY,
    BackendState,
    Capability,
    NotFound,
    Rejected,
    SnapshotCloudState,
    SnapshotCopySpec,
    SnapshotSource,
    SnapshotSpec,
    VolumeCloudState,
    VolumeSpec,
)
from tests.backends.test_contract import settle, spec

pytestmark = pytest.mark.django_db(transaction=True)

V = VolumeCloudState
S = SnapshotCloudState


def volume_spec(
    zone: str, size_gib: int = 1, key: str | None = None, source_snapshot: str = ""
) -> VolumeSpec:
    return VolumeSpec(
        idempotency_key=key or str(uuid.uuid4()),
        name="contract-data",
        zone=zone,
        size_gib=size_gib,
        source_snapshot=source_snapshot,
    )


def until(look, want: set, timeout: float = 90):
    """Poll `look()` until its `.state` is in `want`; fail with the states seen otherwise."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        state = look()
        if not seen or seen[-1] != state.state:
            seen.append(state.state)
        if state.state in want:
            return state
        assert state.state not in {V.ERROR, S.ERROR} or V.ERROR in want, f"went to error: {state.fault}"
        time.sleep(0.2)
    pytest.fail(f"did not reach {want} within {timeout} s; went through {seen}")


def gone(look, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            look()
        except NotFound:
            return
        time.sleep(0.2)
    pytest.fail("still there after delete")


@pytest.fixture
def storage_cloud(cloud):
    backend, zone = cloud
    capabilities = backend.capabilities(zone)
    assert {Capability.VOLUMES, Capability.VOLUME_EXTEND} <= capabilities, (
        f"{backend.name} declares {capabilities}: the storage contract needs volumes"
    )
    return backend, zone, capabilities


def test_volume_lifecycle_on_a_running_server(storage_cloud):
    backend, zone, _ = storage_cloud
    asked = volume_spec(zone)
    volume = backend.create_volume(asked)
    assert volume.backend_id
    until(lambda: backend.get_volume(volume.backend_id), {V.AVAILABLE})

    # Idempotent: a retried create adopts the volume the first try made.
    assert backend.create_volume(asked).backend_id == volume.backend_id
    assert backend.find_volume(zone, asked.idempotency_key).backend_id == volume.backend_id
    listed = {v.backend_id: v for v in backend.list_volumes(zone)}
    assert listed[volume.backend_id].idempotency_key == asked.idempotency_key

    server = backend.create_server(spec(zone, name="storage-vm"))
    settle(backend, server.backend_id, BackendState.RUNNING)
    try:
        backend.attach_volume(volume.backend_id, server.backend_id)
        attached = until(lambda: backend.get_volume(volume.backend_id), {V.IN_USE})
        assert attached.attached_to == server.backend_id
        assert attached.device.startswith("/dev/")

        with pytest.raises(Rejected):  # an attached volume is not deleted out from under a server
            backend.delete_volume(volume.backend_id)

        backend.detach_volume(volume.backend_id, server.backend_id)
        detached = until(lambda: backend.get_volume(volume.backend_id), {V.AVAILABLE})
        assert detached.attached_to == ""
        backend.detach_volume(volume.backend_id, server.backend_id)  # again: not an error

        backend.extend_volume(volume.backend_id, 2)
        grown = until(lambda: backend.get_volume(volume.backend_id), {V.AVAILABLE})
        assert grown.size_gib == 2
        with pytest.raises(Rejected):  # volumes only grow
            backend.extend_volume(volume.backend_id, 1)
    finally:
        backend.delete_server(server.backend_id)

    backend.delete_volume(volume.backend_id)
    gone(lambda: backend.get_volume(volume.backend_id))
    backend.delete_volume(volume.backend_id)  # already gone: not an error
    assert backend.find_volume(zone, asked.idempotency_key) is None


def test_unknown_volume_is_not_found(storage_cloud):
    backend, zone, _ = storage_cloud
    volume = backend.create_volume(volume_spec(zone))
    tail = "1111" if volume.backend_id.endswith("0000") else "0000"
    try:
        with pytest.raises(NotFound):
            backend.get_volume(volume.backend_id[:-4] + tail)
    finally:
        until(lambda: backend.get_volume(volume.backend_id), {V.AVAILABLE})
        backend.delete_volume(volume.backend_id)


def test_volume_snapshot_becomes_a_new_volume(storage_cloud):
    backend, zone, capabilities = storage_cloud
    if Capability.VOLUME_SNAPSHOTS not in capabilities:
        with pytest.raises(Rejected, match="not available"):
            backend.create_snapshot(SnapshotSpec(str(uuid.uuid4()), "s", zone, SnapshotSource.VOLUME, "x"))
        return
    volume = backend.create_volume(volume_spec(zone))
    until(lambda: backend.get_volume(volume.backend_id), {V.AVAILABLE})
    asked = SnapshotSpec(str(uuid.uuid4()), "contract-snap", zone, SnapshotSource.VOLUME, volume.backend_id)
    snapshot = backend.create_snapshot(asked)
    ready = until(lambda: backend.get_snapshot(snapshot.backend_id), {S.AVAILABLE})
    assert ready.source == SnapshotSource.VOLUME and ready.size_gib >= 1
    assert backend.create_snapshot(asked).backend_id == snapshot.backend_id  # idempotent
    assert snapshot.backend_id in {s.backend_id for s in backend.list_snapshots(zone)}

    copy = backend.create_volume(volume_spec(zone, source_snapshot=snapshot.backend_id))
    until(lambda: backend.get_volume(copy.backend_id), {V.AVAILABLE})
    for backend_id in (copy.backend_id, volume.backend_id):
        backend.delete_volume(backend_id)
        gone(lambda backend_id=backend_id: backend.get_volume(backend_id))
    backend.delete_snapshot(snapshot.backend_id)
    gone(lambda: backend.get_snapshot(snapshot.backend_id))
    backend.delete_snapshot(snapshot.backend_id)  # already gone: not an error


def test_server_snapshot_boots_a_new_server(storage_cloud):
    backend, zone, capabilities = storage_cloud
    if Capability.SERVER_SNAPSHOTS not in capabilities:
        with pytest.raises(Rejected, match="not available"):
            backend.create_snapshot(SnapshotSpec(str(uuid.uuid4()), "s", zone, SnapshotSource.SERVER, "x"))
        return
    server = backend.create_server(spec(zone, name="snap-source"))
    settle(backend, server.backend_id, BackendState.RUNNING)
    asked = SnapshotSpec(str(uuid.uuid4()), "contract-image", zone, SnapshotSource.SERVER, server.backend_id)
    snapshot = backend.create_snapshot(asked)
    ready = until(lambda: backend.get_snapshot(snapshot.backend_id), {S.AVAILABLE}, timeout=180)
    assert ready.image_ref and ready.min_disk_gib >= 1
    backend.delete_server(server.backend_id)

    clone = backend.create_server(_from_image(spec(zone, name="from-snapshot"), ready.image_ref))
    settle(backend, clone.backend_id, BackendState.RUNNING, timeout=180)
    backend.delete_server(clone.backend_id)
    backend.delete_snapshot(snapshot.backend_id)
    gone(lambda: backend.get_snapshot(snapshot.backend_id))


def _from_image(server_spec, image_ref: str):
    from dataclasses import replace

    return replace(server_spec, image_backend_id=image_ref)


def test_server_snapshot_is_copied_into_another_zone(cloud_pair):
    """A server snapshot copied into another zone of the same cloud is a snapshot of that zone: it
    becomes available there, a retried copy adopts the first, a new server boots from it there,
    and it is deleted on its own (the source stays)."""
    backend, zone, other = cloud_pair
    assert Capability.IMAGE_COPY in backend.capabilities(zone) & backend.capabilities(other)
    server = backend.create_server(spec(zone, name="copy-source"))
    settle(backend, server.backend_id, BackendState.RUNNING)
    taken = SnapshotSpec(str(uuid.uuid4()), "copy-image", zone, SnapshotSource.SERVER, server.backend_id)
    source = backend.create_snapshot(taken)
    source = until(lambda: backend.get_snapshot(source.backend_id), {S.AVAILABLE}, timeout=180)
    backend.delete_server(server.backend_id)

    asked = SnapshotCopySpec(str(uuid.uuid4()), "copy-image-elsewhere", other, source.backend_id)
    copy = backend.copy_snapshot(asked)
    assert copy.backend_id != source.backend_id
    ready = until(lambda: backend.get_snapshot(copy.backend_id), {S.AVAILABLE}, timeout=180)
    assert ready.source == SnapshotSource.SERVER and ready.image_ref and ready.image_ref != source.image_ref
    assert ready.idempotency_key == asked.idempotency_key
    assert ready.min_disk_gib == source.min_disk_gib and ready.size_gib >= 1
    assert backend.copy_snapshot(asked).backend_id == copy.backend_id  # idempotent
    assert backend.find_snapshot(other, asked.idempotency_key).backend_id == copy.backend_id
    assert copy.backend_id in {s.backend_id for s in backend.list_snapshots(other)}
    assert copy.backend_id not in {s.backend_id for s in backend.list_snapshots(zone)}
    with pytest.raises(Rejected):  # into its own zone
        backend.copy_snapshot(SnapshotCopySpec(str(uuid.uuid4()), "same", zone, source.backend_id))

    clone = backend.create_server(_from_image(spec(other, name="from-copy"), ready.image_ref))
    settle(backend, clone.backend_id, BackendState.RUNNING, timeout=180)
    backend.delete_server(clone.backend_id)
    gone_server(backend, clone.backend_id)
    backend.delete_snapshot(copy.backend_id)
    gone(lambda: backend.get_snapshot(copy.backend_id))
    assert backend.get_snapshot(source.backend_id).state == S.AVAILABLE  # the source stays
    backend.delete_snapshot(source.backend_id)
    gone(lambda: backend.get_snapshot(source.backend_id))


def test_copy_of_a_snapshot_that_is_gone_is_refused(cloud_pair):
    backend, zone, other = cloud_pair
    server = backend.create_server(spec(zone, name="copy-gone"))
    settle(backend, server.backend_id, BackendState.RUNNING)
    source = backend.create_snapshot(
        SnapshotSpec(str(uuid.uuid4()), "copy-gone", zone, SnapshotSource.SERVER, server.backend_id)
    )
    until(lambda: backend.get_snapshot(source.backend_id), {S.AVAILABLE}, timeout=180)
    backend.delete_server(server.backend_id)
    backend.delete_snapshot(source.backend_id)
    gone(lambda: backend.get_snapshot(source.backend_id))
    key = str(uuid.uuid4())
    with pytest.raises((Rejected, NotFound)):
        backend.copy_snapshot(SnapshotCopySpec(key, "copy-of-nothing", other, source.backend_id))
    assert backend.find_snapshot(other, key) is None


def gone_server(backend, backend_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            backend.get_server(backend_id)
        except NotFound:
            return
        time.sleep(0.2)


def test_server_disk_is_restored_from_its_snapshot(storage_cloud):
    """A rebuild: the root disk replaced by the snapshot's, the server back in the state it had
    (running, then stopped), idempotent by its key; an image that is not there is refused."""
    backend, zone, capabilities = storage_cloud
    if Capability.SERVER_REBUILD not in capabilities:
        with pytest.raises(Rejected, match="not available"):
            backend.rebuild_server(f"{zone}:x", image_ref="x", rebuild_key=str(uuid.uuid4()))
        return
    assert Capability.SERVER_SNAPSHOTS in capabilities  # what it restores from
    server = backend.create_server(spec(zone, name="rebuild-me"))
    settle(backend, server.backend_id, BackendState.RUNNING)
    try:
        asked = SnapshotSpec(str(uuid.uuid4()), "before", zone, SnapshotSource.SERVER, server.backend_id)
        snapshot = backend.create_snapshot(asked)
        ready = until(lambda: backend.get_snapshot(snapshot.backend_id), {S.AVAILABLE}, timeout=180)
        settle(backend, server.backend_id, BackendState.RUNNING)

        key = str(uuid.uuid4())
        backend.rebuild_server(server.backend_id, image_ref=ready.image_ref, rebuild_key=key)
        settle(backend, server.backend_id, BackendState.RUNNING, timeout=180)
        rebuilt = backend.get_server(server.backend_id)
        assert rebuilt.metadata[REBUILD_METADATA_KEY] == key
        # The same request again (a retried step) does not rebuild a second time.
        backend.rebuild_server(server.backend_id, image_ref=ready.image_ref, rebuild_key=key)
        assert backend.get_server(server.backend_id).state == BackendState.RUNNING

        with pytest.raises(Rejected):  # no such image in this cloud
            backend.rebuild_server(
                server.backend_id, image_ref=ready.image_ref[:-4] + "0000", rebuild_key=str(uuid.uuid4())
            )
        assert backend.get_server(server.backend_id).state == BackendState.RUNNING

        backend.stop_server(server.backend_id)
        settle(backend, server.backend_id, BackendState.STOPPED, timeout=120)
        again = str(uuid.uuid4())
        backend.rebuild_server(server.backend_id, image_ref=ready.image_ref, rebuild_key=again)
        settle(backend, server.backend_id, BackendState.STOPPED, timeout=180)
        assert backend.get_server(server.backend_id).metadata[REBUILD_METADATA_KEY] == again

        tail = "1111" if server.backend_id.endswith("0000") else "0000"
        with pytest.raises(NotFound):  # no such server
            backend.rebuild_server(
                server.backend_id[:-4] + tail, image_ref=ready.image_ref, rebuild_key=str(uuid.uuid4())
            )
    finally:
        backend.delete_server(server.backend_id)
    backend.delete_snapshot(snapshot.backend_id)
    gone(lambda: backend.get_snapshot(snapshot.backend_id))
