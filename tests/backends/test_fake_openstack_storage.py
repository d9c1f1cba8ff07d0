"""The fake cloud's storage APIs refuse wrong requests as Cinder, Nova and Glance do, so that the
backend's tests cannot pass on a fake that accepts what a real cloud refuses. Driven through
openstacksdk directly (the backend's own checks would stop most of these before the cloud)."""

from __future__ import annotations

import time

import pytest
from openstack import exceptions as sdk_exceptions

from tests.backends.openstack_specs import B, nova_id, settle, spec


@pytest.fixture
def conn(openstack_backend):
    backend, zone = openstack_backend
    return backend._connection(zone)


def wait_for(read, status: str, timeout: float = 5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        thing = read()
        if thing.status == status:
            return thing
        time.sleep(0.05)
    pytest.fail(f"never {status}")


def made(conn, size: int = 1, **attrs):
    volume = conn.block_storage.create_volume(size=size, name="v", **attrs)
    return wait_for(lambda: conn.block_storage.get_volume(volume.id), "available")


def test_cinder_checks_required_fields_and_ids(conn):
    with pytest.raises(sdk_exceptions.BadRequestException, match="must be an integer and greater than 0"):
        conn.block_storage.create_volume(name="no size")
    with pytest.raises(sdk_exceptions.BadRequestException, match="Availability zone 'elsewhere' is invalid"):
        conn.block_storage.create_volume(size=1, availability_zone="elsewhere")
    with pytest.raises(sdk_exceptions.NotFoundException, match="could not be found"):
        conn.block_storage.get_volume("0c2c2f5e-0000-4000-8000-000000000000")
    with pytest.raises(sdk_exceptions.NotFoundException, match=r"Snapshot .* could not be found"):
        conn.block_storage.create_volume(size=1, snapshot_id="0c2c2f5e-0000-4000-8000-000000000000")


def test_cinder_extends_only_upwards_and_only_a_settled_volume(conn, fake_openstack):
    volume = made(conn, size=2)
    with pytest.raises(sdk_exceptions.BadRequestException, match="New size for extend must be greater"):
        conn.block_storage.extend_volume(volume.id, 2)
    conn.block_storage.extend_volume(volume.id, 3)
    with pytest.raises(sdk_exceptions.BadRequestException, match="status must be available or in-use"):
        conn.block_storage.extend_volume(volume.id, 4)  # still extending
    assert wait_for(lambda: conn.block_storage.get_volume(volume.id), "available").size == 3


def test_cinder_keeps_a_volume_with_snapshots_and_nova_an_attached_one(
    openstack_backend, conn, fake_openstack
):
    backend, zone = openstack_backend
    volume = made(conn)
    snapshot = conn.block_storage.create_snapshot(volume_id=volume.id, name="s")
    with pytest.raises(sdk_exceptions.BadRequestException, match=r"must not be .*have snapshots"):
        conn.block_storage.delete_volume(volume.id, ignore_missing=False)
    with pytest.raises(sdk_exceptions.BadRequestException, match="Snapshot status must be available"):
        conn.block_storage.delete_snapshot(snapshot.id, ignore_missing=False)  # still creating
    server = backend.create_server(spec(zone))
    settle(backend, server.backend_id, B.RUNNING)
    other = made(conn)
    conn.compute.create_volume_attachment(nova_id(server.backend_id), volume=other.id)
    wait_for(lambda: conn.block_storage.get_volume(other.id), "in-use")
    with pytest.raises(sdk_exceptions.BadRequestException, match=r"must not be .*attached"):
        conn.block_storage.delete_volume(other.id, ignore_missing=False)
    with pytest.raises(sdk_exceptions.BadRequestException, match="already attached"):
        conn.compute.create_volume_attachment(nova_id(server.backend_id), volume=other.id)


def test_nova_checks_attachments(openstack_backend, conn, fake_openstack):
    backend, zone = openstack_backend
    volume = made(conn)
    with fake_openstack.frozen():
        building = backend.create_server(spec(zone, name="building"))
        with pytest.raises(sdk_exceptions.ConflictException, match="while it is in vm_state building"):
            conn.compute.create_volume_attachment(nova_id(building.backend_id), volume=volume.id)
    settle(backend, building.backend_id, B.RUNNING)
    with pytest.raises(sdk_exceptions.NotFoundException, match="No volume Block Device Mapping"):
        conn.compute.delete_volume_attachment(nova_id(building.backend_id), volume.id, ignore_missing=False)
    with pytest.raises(sdk_exceptions.NotFoundException, match=r"Volume .* could not be found"):
        conn.compute.create_volume_attachment(
            nova_id(building.backend_id), volume="0c2c2f5e-0000-4000-8000-000000000000"
        )
    fake_openstack.volume.availability_zones.add("nova-2")
    elsewhere = made(conn, availability_zone="nova-2")
    with pytest.raises(sdk_exceptions.BadRequestException, match="not in the same availability_zone"):
        conn.compute.create_volume_attachment(nova_id(building.backend_id), volume=elsewhere.id)
    fake_openstack.compute.storage.cross_az_attach = True  # nova.conf's default
    conn.compute.create_volume_attachment(nova_id(building.backend_id), volume=elsewhere.id)


def test_nova_create_image_needs_a_name_and_glance_keeps_protected_images(
    openstack_backend, conn, fake_openstack
):
    backend, zone = openstack_backend
    server = backend.create_server(spec(zone))
    settle(backend, server.backend_id, B.RUNNING)
    response = conn.compute.post(f"/servers/{nova_id(server.backend_id)}/action", json={"createImage": {}})
    assert response.status_code == 400 and "'name' is a required property" in response.text
    image = fake_openstack.image.add_image("kept", protected=True)
    response = conn.image.delete(f"/images/{image['id']}", headers={"Accept": "application/json"})
    assert response.status_code == 403 and image["id"] in fake_openstack.image.images
    listed = conn.image.get("/images", params={"name": "kept", "protected": "true"}).json()["images"]
    assert [i["id"] for i in listed] == [image["id"]]
