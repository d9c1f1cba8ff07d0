"""Clouds that lack something still launch servers: without Neutron's security groups, without
Cinder, without Nova's limits call. What is missing is declared (`capabilities`), said in the zone's
health line, and a request that needs it is refused in the customer's terms before anything is
made in the cloud."""

from __future__ import annotations

import pytest

from portal.compute.backends.base import Capability, Rejected, ZoneCapacity
from portal.compute.backends.openstack import OpenStackBackend
from tests.backends.fake_openstack import PASSWORD, REGION, backend_options
from tests.backends.openstack_specs import B, settle, spec

WITHOUT_CINDER = pytest.mark.parametrize("fake_openstack", [{"without": ["volume"]}], indirect=True)


def test_a_full_cloud_can_do_what_the_backend_implements_and_is_asked_once(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    # Not the portal's pools' addresses: Neutron picks (fixed_ips from the pools is not done yet).
    absent = {Capability.SERIAL_CONSOLE, Capability.GRAPHICAL_CONSOLE, Capability.OPERATOR_ADDRESSES}
    everything = set(Capability) - absent
    assert backend.capabilities(zone) == everything  # Neutron groups, Cinder and Glance; no consoles yet
    backend.create_server(spec(zone))
    assert backend.capabilities(zone) == everything
    assert fake_openstack.calls("GET", r"/v2.0/extensions$") == 1


# --- no security groups -----------------------------------------------------------------------


@pytest.fixture
def without_security_groups(fake_openstack):
    fake_openstack.network.extensions.discard("security-group")
    return fake_openstack


def test_without_security_groups_a_server_without_firewall_launches(
    openstack_backend, without_security_groups
):
    backend, zone = openstack_backend
    assert Capability.FIREWALL not in backend.capabilities(zone)
    created = backend.create_server(spec(zone, firewall_rules=()))  # "all inbound traffic allowed"
    settle(backend, created.backend_id, B.RUNNING)
    assert without_security_groups.calls("GET", r"/security-groups") == 0


def test_without_security_groups_firewall_rules_are_refused(openstack_backend, without_security_groups):
    backend, zone = openstack_backend
    with pytest.raises(Rejected) as refused:
        backend.create_server(spec(zone))  # asks for SSH from one address only
    assert refused.value.user_message == (
        "This zone cannot apply firewall rules. Launch without a firewall, or choose another zone."
    )
    assert without_security_groups.compute.live_servers() == []
    assert without_security_groups.compute.keypairs == {}  # refused before anything was made


def test_without_security_groups_the_health_line_says_so(openstack_backend, without_security_groups):
    backend, zone = openstack_backend
    health = backend.check_health(zone)
    assert health.startswith("Signed in to 127.0.0.1 (RegionOne); 3 flavors; ")
    assert "; no security groups: firewall rules are not applied in this zone" in health


# --- no Cinder ------------------------------------------------------------------------------------


@WITHOUT_CINDER
def test_without_cinder_a_root_disk_the_flavor_holds_boots_from_the_image(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    assert Capability.LARGE_ROOT_DISK not in backend.capabilities(zone)
    assert Capability.FIREWALL in backend.capabilities(zone)
    created = backend.create_server(spec(zone, root_disk_gib=25))  # the flavor's disk is 25 GiB
    settle(backend, created.backend_id, B.RUNNING)
    [server] = fake_openstack.compute.live_servers()
    assert not server.block_device_mapping


@WITHOUT_CINDER
def test_without_cinder_a_larger_root_disk_is_refused_in_plain_words(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    with pytest.raises(Rejected) as refused:
        backend.create_server(spec(zone, root_disk_gib=80))
    assert refused.value.user_message == (
        "This size's disk is 25 GiB in this zone; choose a root disk of at most 25 GiB."
    )
    assert "no Cinder" in refused.value.detail
    assert fake_openstack.compute.live_servers() == []
    assert fake_openstack.network.security_groups == {}


@WITHOUT_CINDER
def test_without_cinder_boot_from_volume_is_a_configuration_error(db, fake_openstack, monkeypatch):
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    zones = {"osl1-a": {"region": REGION, "network": "public", "boot_from_volume": True}}
    backend = OpenStackBackend("openstack", **backend_options(fake_openstack, zones=zones))
    with pytest.raises(Rejected, match="not connected") as refused:
        backend.create_server(spec("osl1-a"))
    assert "boot_from_volume is set, but the cloud has no Cinder" in refused.value.detail
    assert "no Cinder: a root disk can be no larger than its flavor's disk" in backend.check_health("osl1-a")
    backend.close()


# --- no limits call -------------------------------------------------------------------------------


def test_without_the_limits_call_capacity_comes_from_the_zone_settings(db, fake_openstack, monkeypatch):
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    fake_openstack.remove_route("GET", r"/limits$")
    zones = {"osl1-a": {"region": REGION, "network": "public", "max_vcpus": 8, "max_ram_gib": 16}}
    backend = OpenStackBackend("openstack", **backend_options(fake_openstack, zones=zones))
    assert backend.zone_capacity("osl1-a") == ZoneCapacity(free_vcpus=8, free_ram_gib=16)
    health = backend.check_health("osl1-a")
    assert "8 vCPUs and 16 GiB RAM free; no limits call (404): the project's quota is not counted" in health
    created = backend.create_server(spec("osl1-a"))
    settle(backend, created.backend_id, B.RUNNING)
    backend.close()
