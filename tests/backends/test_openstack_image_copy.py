"""Copies of images between the regions of one OpenStack cloud (openstack_image_copy.py), against
the fake cloud's two Glances; and that fake Glance refuses wrong image requests as Glance does."""

from __future__ import annotations

import uuid

import pytest
import requests

from portal.compute.backends import SnapshotCloudState, SnapshotCopySpec, Transient
from portal.compute.backends.storage import STORAGE_METADATA_KEY
from tests.backends.fake_openstack import ZONE_TWO

pytestmark = pytest.mark.django_db(transaction=True)


def _active_image(cloud, name="source") -> dict:
    return cloud.image.add_image(name, image_type="snapshot", visibility="private")


def test_copy_goes_into_the_target_regions_glance_with_the_data(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    source = _active_image(fake_openstack)
    key = str(uuid.uuid4())
    copy = backend.copy_snapshot(SnapshotCopySpec(key, "copied", ZONE_TWO, f"{zone}:image:{source['id']}"))

    assert copy.state == SnapshotCloudState.AVAILABLE and copy.backend_id.startswith(f"{ZONE_TWO}:image:")
    image_id = copy.image_ref
    assert image_id in fake_openstack.image2.images and image_id not in fake_openstack.image.images
    made = fake_openstack.image2.images[image_id]
    assert made[STORAGE_METADATA_KEY] == key and made["portal-copied-from"] == source["id"]
    assert made["visibility"] == "private" and made["min_disk"] == source["min_disk"]
    assert fake_openstack.image2.data[image_id] == fake_openstack.image.data.get(source["id"]) or (
        fake_openstack.image2.data[image_id].startswith(b"QFI\xfb")
    )
    # Repeated: the same copy, no second image and no second upload.
    uploads = fake_openstack.calls("PUT", r"/image2/v2/images/.*/file")
    again = backend.copy_snapshot(SnapshotCopySpec(key, "copied", ZONE_TWO, f"{zone}:image:{source['id']}"))
    assert again.backend_id == copy.backend_id
    assert fake_openstack.calls("PUT", r"/image2/v2/images/.*/file") == uploads == 1


def test_an_upload_cut_off_is_resumed_into_the_same_image(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    source = _active_image(fake_openstack)
    key = str(uuid.uuid4())
    asked = SnapshotCopySpec(key, "copied", ZONE_TWO, f"{zone}:image:{source['id']}")
    fake_openstack.fail_next(1, path="/image2/v2/images/")  # the upload's PUT meets a 503
    with pytest.raises(Transient):
        backend.copy_snapshot(asked)
    queued = [i for i in fake_openstack.image2.images.values() if i.get(STORAGE_METADATA_KEY) == key]
    assert [i["status"] for i in queued] == ["queued"]

    copy = backend.copy_snapshot(asked)
    assert copy.state == SnapshotCloudState.AVAILABLE and copy.image_ref == queued[0]["id"]
    assert len([i for i in fake_openstack.image2.images.values() if i.get(STORAGE_METADATA_KEY) == key]) == 1


def test_copy_of_an_image_that_is_not_active_is_refused(openstack_backend, fake_openstack):
    from portal.compute.backends import Rejected

    backend, zone = openstack_backend
    source = fake_openstack.image.add_image("saving", status="saving")
    key = str(uuid.uuid4())
    with pytest.raises(Rejected, match="available"):
        backend.copy_snapshot(SnapshotCopySpec(key, "c", ZONE_TWO, f"{zone}:image:{source['id']}"))
    assert not [i for i in fake_openstack.image2.images.values() if i.get(STORAGE_METADATA_KEY) == key]


# --- the fake Glance behaves like Glance ----------------------------------------------------------


@pytest.fixture
def glance(fake_openstack):
    token = "t-" + uuid.uuid4().hex
    fake_openstack.tokens[token] = 4_000_000_000
    headers = {"X-Auth-Token": token, "Accept": "application/json"}
    return f"{fake_openstack.url}/image2/v2", headers


def test_fake_glance_image_data_goes_queued_to_active(glance):
    url, headers = glance
    made = requests.post(
        f"{url}/images",
        json={"name": "x", "disk_format": "qcow2", "container_format": "bare"},
        headers=headers,
        timeout=5,
    )
    assert made.status_code == 201 and made.json()["status"] == "queued"
    image = made.json()["id"]
    assert requests.get(f"{url}/images/{image}/file", headers=headers, timeout=5).status_code == 204
    octet = headers | {"Content-Type": "application/octet-stream"}
    assert (
        requests.put(
            f"{url}/images/{image}/file", data=iter([b"abc", b"def"]), headers=octet, timeout=5
        ).status_code
        == 204
    )
    shown = requests.get(f"{url}/images/{image}", headers=headers, timeout=5).json()
    assert shown["status"] == "active" and shown["size"] == 6
    assert requests.get(f"{url}/images/{image}/file", headers=headers, timeout=5).content == b"abcdef"
    again = requests.put(f"{url}/images/{image}/file", data=b"x", headers=octet, timeout=5)
    assert again.status_code == 409 and "transition from active" in again.text


def test_fake_glance_refuses_wrong_requests(glance):
    url, headers = glance
    missing = str(uuid.uuid4())
    octet = headers | {"Content-Type": "application/octet-stream"}
    assert requests.get(f"{url}/images/{missing}/file", headers=headers, timeout=5).status_code == 404
    assert (
        requests.put(f"{url}/images/{missing}/file", data=b"x", headers=octet, timeout=5).status_code == 404
    )
    bad = requests.post(
        f"{url}/images",
        json={"name": "x", "disk_format": "floppy", "size-ish": 3},
        headers=headers,
        timeout=5,
    )
    assert bad.status_code == 400 and "disk_format" in bad.text and "string" in bad.text
    made = requests.post(f"{url}/images", json={"name": "y"}, headers=headers, timeout=5).json()
    as_json = requests.put(
        f"{url}/images/{made['id']}/file", json={"no": "bytes"}, headers=headers, timeout=5
    )
    assert as_json.status_code == 415
