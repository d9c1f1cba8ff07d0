"""What the backend looks up by name is checked, not trusted to the cloud's filters: the image a
server boots is the one the zone maps the portal's image to by id, or the one active image named
exactly so, and a security group and its rules are the ones asked for. A cloud that ignores the
filters (`ignores_filters`) must not boot the first image of its list or reuse another firewall."""

from __future__ import annotations

import pytest

from portal.compute.backends.base import Rejected
from portal.compute.backends.openstack import OpenStackBackend
from tests.backends.fake_openstack import PASSWORD, REGION, backend_options
from tests.backends.openstack_specs import PING_V6, SSH_FROM_OFFICE, spec

IMAGE_REFUSED = "The chosen image is not available in this zone right now. Try another image or zone."


@pytest.fixture
def unfiltered(fake_openstack):
    """A Glance that answers every image to any query, newest first, with a newer image on top."""
    fake_openstack.image.ignores_filters = True
    fake_openstack.image.add_image("Ubuntu 24.04", created_at="2026-06-01T00:00:00Z")
    return fake_openstack


def _booted(cloud) -> str:
    [server] = cloud.compute.live_servers()
    return cloud.image.images[server.image_id]["name"]


def test_the_image_is_the_one_named_exactly_even_when_the_filter_is_ignored(openstack_backend, unfiltered):
    backend, zone = openstack_backend
    backend.create_server(spec(zone, image="Debian 12"))
    assert _booted(unfiltered) == "Debian 12"


def test_an_unknown_image_is_refused_when_the_filter_is_ignored(openstack_backend, unfiltered):
    backend, zone = openstack_backend
    with pytest.raises(Rejected) as refused:
        backend.create_server(spec(zone, image="Windows 95"))
    assert refused.value.user_message == IMAGE_REFUSED
    assert "no active Glance image named exactly 'Windows 95'" in refused.value.detail
    assert unfiltered.compute.live_servers() == []


def test_an_image_that_is_not_active_is_not_booted(openstack_backend, unfiltered):
    backend, zone = openstack_backend
    unfiltered.image.add_image("Debian 13", status="queued")
    with pytest.raises(Rejected, match="image is not available"):
        backend.create_server(spec(zone, image="Debian 13"))


def test_two_active_images_with_the_name_are_refused_as_ambiguous(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    rebuilt = fake_openstack.image.add_image("debian-12", created_at="2026-02-01T00:00:00Z")
    with pytest.raises(Rejected) as refused:
        backend.create_server(spec(zone, image="debian-12"))
    assert refused.value.user_message == IMAGE_REFUSED
    assert "2 active Glance images are named 'debian-12'" in refused.value.detail
    assert (
        rebuilt["id"] in refused.value.detail
        and '"images": {"debian-12": "<image id>"}' in refused.value.detail
    )
    assert fake_openstack.compute.live_servers() == []


def test_the_zones_mapping_to_an_image_id_is_booted(catalog, fake_openstack, unfiltered, monkeypatch):
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    trixie = fake_openstack.image.add_image("debian-13-genericcloud-amd64-20261101")
    zone = catalog["fra1-a"]
    zone.backend_settings = {
        "region": REGION,
        "availability_zone": "nova",
        "network": "public",
        "images": {"Debian 13": trixie["id"]},
    }
    zone.save()
    backend = OpenStackBackend("openstack", **backend_options(fake_openstack, zones={}))
    backend.create_server(spec("fra1-a", image="Debian 13"))
    assert _booted(fake_openstack) == trixie["name"]
    assert fake_openstack.calls("GET", rf"/v2/images/{trixie['id']}$") == 1
    assert fake_openstack.calls("GET", r"/v2/images\?") == 0  # no search by name

    zone.backend_settings["images"] = {"Debian 13": "00000000-0000-4000-8000-00000000dead"}
    zone.save()
    with pytest.raises(Rejected) as refused:
        backend.create_server(spec("fra1-a", image="Debian 13"))
    assert refused.value.user_message == IMAGE_REFUSED
    assert "no Glance image with id 00000000-0000-4000-8000-00000000dead" in refused.value.detail
    backend.close()


def test_security_groups_are_checked_by_name_and_rules_by_group(openstack_backend, fake_openstack):
    # Neutron's filters are hints too: with them ignored, the first group and every rule come back.
    backend, zone = openstack_backend
    fake_openstack.network.ignores_filters = True
    backend.create_server(spec(zone, name="web-1", firewall_rules=(SSH_FROM_OFFICE,)))
    backend.create_server(spec(zone, name="web-2", firewall_rules=(SSH_FROM_OFFICE, PING_V6)))
    groups = {g["name"]: g for g in fake_openstack.network.security_groups.values()}
    assert len(groups) == 2
    web2 = next(s for s in fake_openstack.compute.live_servers() if s.name == "web-2")
    [group] = [groups[name] for name in web2.security_groups]
    ingress = {
        (r["protocol"], r["port_range_min"])
        for r in group["security_group_rules"]
        if r["direction"] == "ingress"
    }
    assert ingress == {("tcp", 22), ("ipv6-icmp", None)}
