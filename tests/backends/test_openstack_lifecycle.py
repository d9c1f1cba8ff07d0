"""The OpenStack backend drives a server through its life against the fake cloud over real HTTP
(fake_openstack/): openstacksdk signs in, discovers the services and calls Nova as it would a real
cloud. Repeated actions are no-ops, wrong-state ones refused in plain words."""

from __future__ import annotations

import base64
import uuid

import pytest

from portal.compute.backends.base import (
    IDEMPOTENCY_METADATA_KEY,
    NotFound,
    Rejected,
)
from portal.compute.backends.openstack_mapping import (
    keypair_name,
)
from tests.backends.openstack_specs import KEY_A, B, nova_id, settle, spec

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
