"""Signing in to an OpenStack cloud and reading its settings: tokens, passwords from the
environment, clouds.yaml, zone settings from admin; and what the backend reports about a zone
(capacity, health)."""

from __future__ import annotations

import pytest

from portal.compute.backends.base import (
    Rejected,
    Transient,
    ZoneCapacity,
)
from portal.compute.backends.openstack import OpenStackBackend
from tests.backends.fake_openstack import PASSWORD, REGION, USERNAME, backend_options
from tests.backends.openstack_specs import spec


def test_revoked_token_signs_in_again(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    created = backend.create_server(spec(zone))
    assert fake_openstack.calls("POST", r"/auth/tokens$") == 1
    fake_openstack.revoke_tokens()
    assert backend.get_server(created.backend_id).backend_id == created.backend_id
    assert fake_openstack.calls("POST", r"/auth/tokens$") == 2
    assert any(status == 401 for _, _, status in fake_openstack.requests)


def test_refused_password_is_a_clear_error_without_the_password(db, fake_openstack, monkeypatch):
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", "hunter2-wrong")
    backend = OpenStackBackend("openstack", **backend_options(fake_openstack))
    with pytest.raises(Transient) as refused:
        backend.find_server("osl1-a", "x")
    assert refused.value.user_message == "We could not sign in to this zone's cloud; we will try again."
    assert "hunter2" not in refused.value.detail and "hunter2" not in str(refused.value)


def test_missing_password_variable_means_not_connected(db, fake_openstack, monkeypatch):
    monkeypatch.delenv("FAKE_OPENSTACK_PASSWORD", raising=False)
    backend = OpenStackBackend("openstack", **backend_options(fake_openstack))
    with pytest.raises(Rejected, match="not connected") as refused:
        backend.zone_capacity("osl1-a")
    assert "FAKE_OPENSTACK_PASSWORD" in refused.value.detail
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    with pytest.raises(Rejected, match="not connected") as unknown:
        backend.zone_capacity("nowhere-1")  # a zone this backend has no settings for
    assert "no OpenStack settings" in unknown.value.detail


def test_capacity_from_project_limits(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    assert backend.zone_capacity(zone) == ZoneCapacity(free_vcpus=20, free_ram_gib=50)
    backend.create_server(spec(zone, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2))
    assert backend.zone_capacity(zone) == ZoneCapacity(free_vcpus=18, free_ram_gib=48)
    assert fake_openstack.requests[-1][2] == 403  # hypervisor statistics: admin only


def test_capacity_takes_the_smaller_of_limits_and_hypervisors(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    fake_openstack.compute.hypervisor_statistics = {
        "count": 2,
        "vcpus": 64,
        "vcpus_used": 60,
        "memory_mb": 262144,
        "memory_mb_used": 250000,
        "free_ram_mb": 12144,
        "local_gb": 1000,
        "local_gb_used": 100,
        "running_vms": 30,
    }
    assert backend.zone_capacity(zone) == ZoneCapacity(free_vcpus=4, free_ram_gib=11)


def test_check_health(openstack_backend):
    backend, zone = openstack_backend
    assert (
        backend.check_health(zone)
        == "Signed in to 127.0.0.1 (RegionOne); 3 flavors; 20 vCPUs and 50 GiB RAM free"
    )


def test_clouds_yaml_names_the_cloud(db, fake_openstack, tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n"
        "  fake:\n"
        "    auth:\n"
        f"      auth_url: {fake_openstack.auth_url}\n"
        f"      username: {USERNAME}\n"
        f"      password: {PASSWORD}\n"
        "      project_name: portal-customers\n"
        "      user_domain_name: Default\n"
        "      project_domain_name: Default\n"
    )
    backend = OpenStackBackend(
        "openstack",
        clouds_yaml=str(clouds),
        zones={
            "osl1-b": {"cloud": "fake", "region": REGION, "availability_zone": "nova", "network": "public"}
        },
    )
    created = backend.create_server(spec("osl1-b"))
    assert created.backend_id.startswith("osl1-b:")
    assert backend.check_health("osl1-b").startswith("Signed in to fake (RegionOne)")
    with pytest.raises(Rejected, match="not connected"):
        OpenStackBackend("openstack", clouds_yaml=str(clouds), zones={"z": {"cloud": "nope"}}).find_server(
            "z", "k"
        )
    backend.close()


def test_zone_settings_from_admin_override_settings(catalog, fake_openstack, monkeypatch):
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    zone = catalog["fra1-a"]
    zone.backend_settings = {"region": REGION, "availability_zone": "nova", "network": "no-such-network"}
    zone.save()
    backend = OpenStackBackend("openstack", **backend_options(fake_openstack, zones={}))
    with pytest.raises(Rejected, match="not connected") as refused:
        backend.create_server(spec("fra1-a"))
    assert "no-such-network" in refused.value.detail
    zone.backend_settings["network"] = "public"
    zone.save()
    assert backend.create_server(spec("fra1-a")).backend_id.startswith("fra1-a:")
    backend.close()
