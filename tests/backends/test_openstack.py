"""The OpenStack backend against the fake cloud in fake_openstack/, over real HTTP: openstacksdk
signs in, discovers the services and drives servers the way it would drive a real Nova."""

from __future__ import annotations

import base64
import email
import time
import uuid

import pytest

from portal.compute.backends.base import (
    IDEMPOTENCY_METADATA_KEY,
    BackendState,
    NotFound,
    Rejected,
    ServerSpec,
    Transient,
    ZoneCapacity,
)
from portal.compute.backends.openstack import OpenStackBackend
from portal.compute.backends.openstack_mapping import (
    NO_CAPACITY,
    keypair_name,
    plain_fault,
    security_group_name,
    security_group_rules,
    server_state,
)
from tests.backends import fake_openstack as fake
from tests.backends.fake_openstack import PASSWORD, REGION, USERNAME, backend_options

# The fixtures, for this module (a conftest.py would share them with the whole folder).
fake_openstack = fake.fake_openstack
openstack_backend = fake.openstack_backend

B = BackendState
KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx0ctUYh4bn/lOm/GXl9lZtN0mRRlWwwQxGD1fWqWeP alice@laptop"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@desk"
SSH_FROM_OFFICE = {"protocol": "tcp", "port_from": 22, "port_to": 22, "source": "203.0.113.7/32"}
PING_V6 = {"protocol": "icmp", "port_from": None, "port_to": None, "source": "::/0"}


def spec(zone: str, **overrides) -> ServerSpec:
    values = {
        "idempotency_key": str(uuid.uuid4()),
        "name": "web-1",
        "zone": zone,
        "flavor": "s-1vcpu-1gb",
        "vcpus": 1,
        "ram_gib": 1,
        "root_disk_gib": 25,
        "image": "debian-12",
        "ssh_keys": (KEY_A,),
        "user_data": "#!/bin/sh\necho hello\n",
        "firewall_rules": (SSH_FROM_OFFICE,),
    }
    values.update(overrides)
    return ServerSpec(**values)


def settle(backend, backend_id: str, want: BackendState, timeout: float = 5) -> list[BackendState]:
    """Poll as the runner does until `want`; the states seen on the way."""
    seen: list[BackendState] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = backend.get_server(backend_id).state
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == want:
            return seen
        time.sleep(0.05)
    pytest.fail(f"never reached {want}: {seen}")


def nova_id(backend_id: str) -> str:
    return backend_id.partition(":")[2]


# --- the life of a server ---------------------------------------------------------------------


def test_lifecycle(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    with fake_openstack.frozen():
        created = backend.create_server(spec(zone))
        assert created.state == B.BUILDING
        assert backend.get_server(created.backend_id).state == B.BUILDING
    assert created.backend_id.startswith(f"{zone}:")
    assert created.flavor == "s-1vcpu-1gb"
    settle(backend, created.backend_id, B.RUNNING)
    running = backend.get_server(created.backend_id)
    assert running.addresses and running.addresses[0].startswith("203.0.113.")

    with fake_openstack.frozen():
        backend.stop_server(created.backend_id)
        assert backend.get_server(created.backend_id).state == B.STOPPING  # ACTIVE + powering-off
    settle(backend, created.backend_id, B.STOPPED)
    with fake_openstack.frozen():
        backend.start_server(created.backend_id)
        assert backend.get_server(created.backend_id).state == B.STARTING  # SHUTOFF + powering-on
    settle(backend, created.backend_id, B.RUNNING)
    with fake_openstack.frozen():
        backend.reboot_server(created.backend_id)
        assert backend.get_server(created.backend_id).state == B.REBOOTING
    settle(backend, created.backend_id, B.RUNNING)
    backend.reboot_server(created.backend_id, hard=True)
    settle(backend, created.backend_id, B.RUNNING)

    backend.stop_server(created.backend_id)
    settle(backend, created.backend_id, B.STOPPED)
    with fake_openstack.frozen():
        backend.resize_server(created.backend_id, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)
        assert backend.get_server(created.backend_id).state == B.RESIZING
    # RESIZE, then VERIFY_RESIZE (which get_server confirms), then SHUTOFF as before the resize.
    settle(backend, created.backend_id, B.STOPPED)
    assert backend.get_server(created.backend_id).flavor == "s-2vcpu-2gb"
    assert fake_openstack.calls("POST", r"/action$") >= 7
    [server] = fake_openstack.compute.live_servers()
    assert server.vm_state == "stopped" and server.flavor["name"] == "s-2vcpu-2gb"

    backend.delete_server(created.backend_id)
    with pytest.raises(NotFound):
        backend.get_server(created.backend_id)
    backend.delete_server(created.backend_id)  # already gone: fine
    assert backend.find_server(zone, created.idempotency_key) is None
    assert fake_openstack.compute.live_servers() == []


def test_server_carries_key_metadata_tags_network_zone_and_user_data(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    asked = spec(zone)
    created = backend.create_server(asked)
    [server] = fake_openstack.compute.live_servers()
    assert server.metadata == {IDEMPOTENCY_METADATA_KEY: asked.idempotency_key, "portal-zone": zone}
    assert created.idempotency_key == asked.idempotency_key
    assert f"portal-{asked.idempotency_key}" in server.tags
    assert server.availability_zone == "nova"
    assert list(server.addresses) == ["public"]
    assert server.key_name == keypair_name(KEY_A)
    assert base64.b64decode(server.user_data).decode() == asked.user_data
    assert server.image_id == next(
        i for i, image in fake_openstack.image.images.items() if image["name"] == "debian-12"
    )
    assert not server.block_device_mapping


def test_create_adopts_the_server_made_with_the_same_key(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    asked = spec(zone)
    first = backend.create_server(asked)
    again = backend.create_server(asked)  # the worker died after the first call and runs it again
    assert again.backend_id == first.backend_id
    assert len(fake_openstack.compute.live_servers()) == 1
    assert fake_openstack.calls("POST", r"/servers$") == 1
    # Found by a server-side tag filter, not by reading every server of the project.
    assert fake_openstack.calls("GET", rf"/servers/detail\?tags=portal-{asked.idempotency_key}") >= 2
    assert backend.find_server(zone, asked.idempotency_key).backend_id == first.backend_id
    assert backend.find_server(zone, str(uuid.uuid4())) is None


def test_racing_creations_keep_the_oldest_server(openstack_backend, fake_openstack, monkeypatch):
    backend, zone = openstack_backend
    asked = spec(zone)
    first = backend.create_server(asked)
    # A second worker that looked before the first server existed.
    real = backend._ours
    looks = iter([[]])
    monkeypatch.setattr(backend, "_ours", lambda conn, key: next(looks, None) or real(conn, key))
    second = backend.create_server(asked)
    assert second.backend_id == first.backend_id
    assert [s.id for s in fake_openstack.compute.live_servers()] == [nova_id(first.backend_id)]


def test_list_servers_shows_ours_in_the_zone_only(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    ours = backend.create_server(spec(zone))
    fake_openstack.compute.add_server("made-by-hand")
    fake_openstack.compute.add_server(
        "other-zone",
        metadata={IDEMPOTENCY_METADATA_KEY: "x", "portal-zone": "elsewhere"},
        tags=["portal-x", "portal-zone-elsewhere"],
    )
    listed = backend.list_servers(zone)
    assert [s.backend_id for s in listed] == [ours.backend_id]
    assert listed[0].metadata[IDEMPOTENCY_METADATA_KEY] == ours.idempotency_key


# --- faults and refusals ----------------------------------------------------------------------


def test_no_valid_host_reads_as_no_capacity(openstack_backend):
    backend, zone = openstack_backend
    created = backend.create_server(spec(zone, name="big-novalidhost"))
    settle(backend, created.backend_id, B.ERROR)
    state = backend.get_server(created.backend_id)
    assert state.fault == NO_CAPACITY
    assert "Traceback" not in state.fault and "host was found" not in state.fault


def test_quota_exceeded_is_refused_in_plain_words(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    fake_openstack.compute.limits["maxTotalCores"] = 1
    with pytest.raises(Rejected) as refused:
        backend.create_server(spec(zone, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2))
    assert refused.value.user_message.startswith("This zone has reached its limit")
    assert "Quota exceeded for cores" in refused.value.detail
    assert fake_openstack.compute.live_servers() == []


def test_unknown_image_or_flavor_is_refused(openstack_backend):
    backend, zone = openstack_backend
    with pytest.raises(Rejected, match="image is not available"):
        backend.create_server(spec(zone, image="windows-95"))
    with pytest.raises(Rejected, match="size is not available"):
        backend.create_server(spec(zone, flavor="x-128vcpu"))


def test_repeated_start_and_stop_are_no_ops(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    created = backend.create_server(spec(zone))
    settle(backend, created.backend_id, B.RUNNING)
    backend.start_server(created.backend_id)  # Nova answers 409 "Cannot 'start' ... vm_state active"
    assert fake_openstack.requests[-2][2] == 409
    assert backend.get_server(created.backend_id).state == B.RUNNING
    backend.stop_server(created.backend_id)
    backend.stop_server(created.backend_id)  # on its way down: 409 on task_state powering-off
    settle(backend, created.backend_id, B.STOPPED)
    backend.stop_server(created.backend_id)
    assert backend.get_server(created.backend_id).state == B.STOPPED


def test_wrong_state_actions_are_rejected_in_plain_words(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    with fake_openstack.frozen(), pytest.raises(Rejected) as building:
        created = backend.create_server(spec(zone))
        backend.stop_server(created.backend_id)
    assert building.value.user_message.startswith("The server is still being created right now")
    assert "task_state spawning" in building.value.detail and "task_state" not in building.value.user_message
    settle(backend, created.backend_id, B.RUNNING)
    with pytest.raises(Rejected, match="Stop the server before resizing it"):
        backend.resize_server(created.backend_id, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)
    backend.stop_server(created.backend_id)
    settle(backend, created.backend_id, B.STOPPED)
    with pytest.raises(Rejected, match="The server is stopped right now, so it can't be rebooted"):
        backend.reboot_server(created.backend_id)


def test_repeated_resize_is_a_no_op(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    created = backend.create_server(spec(zone))
    settle(backend, created.backend_id, B.RUNNING)
    backend.stop_server(created.backend_id)
    settle(backend, created.backend_id, B.STOPPED)
    backend.resize_server(created.backend_id, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)
    backend.resize_server(created.backend_id, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)  # under way
    settle(backend, created.backend_id, B.STOPPED)
    backend.resize_server(created.backend_id, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)  # done
    asked = [action for _, action in fake_openstack.compute.actions]
    assert asked.count("resize") == 1 and asked.count("os-stop") == 1


def test_shelved_server_is_started_by_unshelving(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    created = backend.create_server(spec(zone))
    settle(backend, created.backend_id, B.RUNNING)
    fake_openstack.compute.servers[nova_id(created.backend_id)].vm_state = "shelved_offloaded"
    assert backend.get_server(created.backend_id).state == B.STOPPED
    with fake_openstack.frozen():
        backend.start_server(created.backend_id)
        assert backend.get_server(created.backend_id).state == B.STARTING
    settle(backend, created.backend_id, B.RUNNING)
    assert (created.backend_id.partition(":")[2], "unshelve") in fake_openstack.compute.actions


def test_503_is_transient_and_the_next_call_works(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    created = backend.create_server(spec(zone))
    fake_openstack.fail_next(1, path="/compute")
    with pytest.raises(Transient) as busy:
        backend.get_server(created.backend_id)
    assert "503" in busy.value.detail
    assert backend.get_server(created.backend_id).backend_id == created.backend_id
    fake_openstack.fail_next(1, path="/network")
    with pytest.raises(Transient):
        backend.create_server(spec(zone))
    fake_openstack.fail_next(3)
    with pytest.raises(Transient):
        backend.stop_server(created.backend_id)


def test_a_cloud_that_does_not_answer_in_time_is_transient(db, fake_openstack, monkeypatch):
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    backend = OpenStackBackend("openstack", **backend_options(fake_openstack, timeout=0.3))
    zone = "osl1-a"
    created = backend.create_server(spec(zone))
    fake_openstack.stall_next(1, 1.0)
    started = time.monotonic()
    with pytest.raises(Transient):
        backend.get_server(created.backend_id)
    assert time.monotonic() - started < 1.0  # no retries inside the call
    backend.close()


def test_unreachable_cloud_is_transient(db, monkeypatch):
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    options = backend_options(type("Gone", (), {"auth_url": "http://127.0.0.1:9/identity/v3"})())
    backend = OpenStackBackend("openstack", **options)
    with pytest.raises(Transient):
        backend.find_server("osl1-a", "x")


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


# --- keypairs, security groups, user data, disks ------------------------------------------------


def test_keypair_and_security_group_are_made_once_and_reused(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    backend.create_server(spec(zone, name="web-1"))
    backend.create_server(spec(zone, name="web-2"))
    assert list(fake_openstack.compute.keypairs) == [keypair_name(KEY_A)]
    [group] = fake_openstack.network.security_groups.values()
    ingress = [r for r in group["security_group_rules"] if r["direction"] == "ingress"]
    assert [
        (r["protocol"], r["port_range_min"], r["port_range_max"], r["remote_ip_prefix"]) for r in ingress
    ] == [("tcp", 22, 22, "203.0.113.7/32")]
    assert {s.security_groups[0] for s in fake_openstack.compute.live_servers()} == {group["name"]}
    assert fake_openstack.calls("POST", r"/os-keypairs$") == 1
    assert fake_openstack.calls("POST", r"/security-groups$") == 1
    assert fake_openstack.calls("POST", r"/security-group-rules$") == 1
    # Other rules, another group (a group's rules never change under a running server).
    backend.create_server(spec(zone, name="web-3", firewall_rules=(SSH_FROM_OFFICE, PING_V6)))
    assert len(fake_openstack.network.security_groups) == 2


def test_a_half_made_security_group_is_completed(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    name = security_group_name(security_group_rules((SSH_FROM_OFFICE,)))
    fake_openstack.handle(
        "POST",
        "/network/v2.0/security-groups",
        {},
        _token_headers(fake_openstack),
        {"security_group": {"name": name}},
    )  # a launch that died before its rules
    backend.create_server(spec(zone))
    [group] = fake_openstack.network.security_groups.values()
    assert [r["port_range_min"] for r in group["security_group_rules"] if r["direction"] == "ingress"] == [22]


def test_no_firewall_allows_all_inbound(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    backend.create_server(spec(zone, firewall_rules=()))
    [group] = fake_openstack.network.security_groups.values()
    ingress = {
        (r["ethertype"], r["protocol"], r["remote_ip_prefix"])
        for r in group["security_group_rules"]
        if r["direction"] == "ingress"
    }
    assert ingress == {("IPv4", None, "0.0.0.0/0"), ("IPv6", None, "::/0")}


def test_firewall_rules_translate_to_neutron():
    rules = security_group_rules(
        (
            {"protocol": "udp", "port_from": 60000, "port_to": 61000, "source": "0.0.0.0/0"},
            {"protocol": "tcp", "port_from": None, "port_to": None, "source": "10.1.2.3"},
            PING_V6,
        )
    )
    assert {
        (r["ethertype"], r["protocol"], r["port_range_min"], r["port_range_max"], r["remote_ip_prefix"])
        for r in rules
    } == {
        ("IPv4", "udp", 60000, 61000, "0.0.0.0/0"),
        ("IPv4", "tcp", None, None, "10.1.2.3/32"),
        ("IPv6", "ipv6-icmp", None, None, "::/0"),
    }


def test_further_ssh_keys_go_in_through_cloud_init(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    backend.create_server(spec(zone, ssh_keys=(KEY_A, KEY_B)))
    [server] = fake_openstack.compute.live_servers()
    assert server.key_name == keypair_name(KEY_A)  # Nova holds one key per server
    message = email.message_from_string(base64.b64decode(server.user_data).decode())
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }
    assert parts["text/x-shellscript"] == "#!/bin/sh\necho hello\n"
    assert parts["text/cloud-config"].startswith("#cloud-config\n")
    assert KEY_B in parts["text/cloud-config"]


def test_larger_root_disk_boots_from_a_volume(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    backend.create_server(spec(zone, root_disk_gib=80))  # the flavor's own disk is 25 GiB
    [server] = fake_openstack.compute.live_servers()
    [volume] = server.block_device_mapping
    assert volume["volume_size"] == 80 and volume["source_type"] == "image" and volume["boot_index"] == 0


def test_image_and_flavor_names_can_be_mapped(db, fake_openstack, monkeypatch):
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    options = backend_options(
        fake_openstack, images={"Debian 12 (bookworm)": "Debian 12"}, flavors={"s-4vcpu-8gb": "m1.large"}
    )
    backend = OpenStackBackend("openstack", **options)
    created = backend.create_server(spec("osl1-a", image="Debian 12 (bookworm)", flavor="s-4vcpu-8gb"))
    [server] = fake_openstack.compute.live_servers()
    assert fake_openstack.image.images[server.image_id]["name"] == "Debian 12"
    assert server.flavor["name"] == "m1.large"
    assert created.flavor == "s-4vcpu-8gb"  # reported in the portal's words
    backend.close()


# --- console, capacity, health, settings ---------------------------------------------------


def test_console_output(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    with fake_openstack.frozen():
        created = backend.create_server(spec(zone, name="console-vm"))
        assert backend.console_output(created.backend_id) == ""  # still building
    settle(backend, created.backend_id, B.RUNNING)
    assert "console-vm login:" in backend.console_output(created.backend_id)
    backend.delete_server(created.backend_id)
    with pytest.raises(NotFound):
        backend.console_output(created.backend_id)


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


def test_cpu_samples_are_not_reported(openstack_backend):
    from datetime import UTC, datetime, timedelta

    backend, zone = openstack_backend
    now = datetime.now(UTC)
    assert backend.cpu_samples(f"{zone}:x", now - timedelta(hours=1), now) == []


def test_unknown_or_malformed_ids_are_not_found(openstack_backend):
    backend, zone = openstack_backend
    with pytest.raises(NotFound):
        backend.get_server(f"{zone}:{uuid.uuid4()}")
    with pytest.raises(NotFound):
        backend.get_server("no-colon-here")
    backend.delete_server(f"{zone}:{uuid.uuid4()}")


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


# --- pure mappings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "task", "expected"),
    [
        ("BUILD", "spawning", B.BUILDING),
        ("ACTIVE", None, B.RUNNING),
        ("ACTIVE", "powering-off", B.STOPPING),
        ("ACTIVE", "deleting", B.DELETING),
        ("SHUTOFF", None, B.STOPPED),
        ("SHUTOFF", "powering-on", B.STARTING),
        ("REBOOT", "rebooting", B.REBOOTING),
        ("HARD_REBOOT", "rebooting_hard", B.REBOOTING),
        ("RESIZE", "resize_migrating", B.RESIZING),
        ("VERIFY_RESIZE", None, B.RESIZING),
        ("SHELVED_OFFLOADED", None, B.STOPPED),
        ("SHELVED_OFFLOADED", "unshelving", B.STARTING),
        ("SUSPENDED", None, B.STOPPED),
        ("ERROR", None, B.ERROR),
        ("SOFT_DELETED", None, B.DELETING),
    ],
)
def test_nova_states(status, task, expected):
    assert server_state(status, task) == expected


def test_unknown_nova_state_is_transient():
    with pytest.raises(Transient):
        server_state("UNKNOWN", None)


@pytest.mark.parametrize(
    ("fault", "starts"),
    [
        ("No valid host was found. There are not enough hosts available.", "This zone has no capacity"),
        (
            "Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures",
            "This zone has no capacity",
        ),
        (
            "Quota exceeded for ram: Requested 4096, but already used 51200 of 51200 ram",
            "This zone has reached its limit",
        ),
        ("Image 6e7b2b3c could not be found.", "The chosen image is not available"),
        ("Flavor's disk is too small for requested image.", "That size's disk is too small"),
        (
            "Build of instance x aborted: Failed to allocate the network(s), not rescheduling.",
            "The server's network",
        ),
        ("Build of instance x aborted: Volume 1 did not finish being created", "The server's disk"),
        ("Unexpected vif_type=binding_failed", "The cloud could not complete this"),
    ],
)
def test_faults_in_plain_words(fault, starts):
    assert plain_fault(fault).startswith(starts)


# --- helpers ------------------------------------------------------------------------------------


def _token_headers(cloud) -> dict:
    token = "t-" + uuid.uuid4().hex
    cloud.tokens[token] = time.time() + 60
    return {"X-Auth-Token": token}
