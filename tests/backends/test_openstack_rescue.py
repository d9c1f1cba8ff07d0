"""Rescue mode on OpenStack against the fake Nova over real HTTP: rescue from ACTIVE or SHUTOFF
(status RESCUE), unrescue back to ACTIVE, repeats are no-ops, a wrong state is Nova's 409 in plain
words, the zone's settings can declare it absent, and its rescue image is passed along."""

from __future__ import annotations

import pytest

from portal.compute.backends.base import Capability, Rejected
from portal.compute.backends.openstack_mapping import server_state
from tests.backends.openstack_specs import B, nova_id, settle, spec


@pytest.mark.parametrize(
    ("status", "task", "expected"),
    [
        ("ACTIVE", "rescuing", B.RESCUING),
        ("SHUTOFF", "rescuing", B.RESCUING),
        ("RESCUE", None, B.RESCUE),
        ("RESCUE", "unrescuing", B.UNRESCUING),
    ],
)
def test_nova_rescue_states(status, task, expected):
    assert server_state(status, task) == expected


def _running(backend, zone):
    created = backend.create_server(spec(zone))
    settle(backend, created.backend_id, B.RUNNING)
    return created.backend_id


def test_rescue_and_unrescue(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    assert Capability.RESCUE in backend.capabilities(zone)
    server_id = _running(backend, zone)
    with fake_openstack.frozen():
        backend.rescue_server(server_id)
        assert backend.get_server(server_id).state == B.RESCUING  # ACTIVE + rescuing
        backend.rescue_server(server_id)  # again while it boots: nothing new
    settle(backend, server_id, B.RESCUE)
    backend.rescue_server(server_id)  # already in rescue: nothing new
    nova = fake_openstack.compute.servers[nova_id(server_id)]
    assert nova.vm_state == "rescued"
    assert [a for _, a in fake_openstack.compute.actions].count("rescue") == 3  # two 409s absorbed
    with fake_openstack.frozen():
        backend.unrescue_server(server_id)
        assert backend.get_server(server_id).state == B.UNRESCUING
        backend.unrescue_server(server_id)
    settle(backend, server_id, B.RUNNING)
    assert nova.vm_state == "active"


def test_a_stopped_server_is_rescued_and_unrescue_when_running_is_refused(openstack_backend):
    backend, zone = openstack_backend
    server_id = _running(backend, zone)
    backend.stop_server(server_id)
    settle(backend, server_id, B.STOPPED)
    backend.rescue_server(server_id)
    settle(backend, server_id, B.RESCUE)
    backend.unrescue_server(server_id)
    settle(backend, server_id, B.RUNNING)
    # Nova refuses an unrescue of a server not in rescue (409): said in plain words.
    backend.unrescue_server(server_id)  # already running: what unrescue leaves, a no-op


def test_a_building_server_is_refused(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    with fake_openstack.frozen():
        created = backend.create_server(spec(zone))
        with pytest.raises(Rejected) as refused:
            backend.rescue_server(created.backend_id)
    assert "still being created" in refused.value.user_message
    assert "task_state" in refused.value.detail  # Nova's own words, for the operator


def test_the_fake_answers_like_nova(openstack_backend, fake_openstack):
    """Unrescue of an ACTIVE server is a 409; rescue answers 200 with the rescue password."""
    backend, zone = openstack_backend
    server_id = _running(backend, zone)
    conn = backend._connection(zone)
    from openstack import exceptions

    with pytest.raises(exceptions.ConflictException):
        conn.compute.unrescue_server(nova_id(server_id))
    answer = conn.compute.post(f"/servers/{nova_id(server_id)}/action", json={"rescue": {}})
    assert answer.status_code == 200 and answer.json()["adminPass"]
    with pytest.raises(exceptions.BadRequestException):
        conn.compute.rescue_server(nova_id(server_id), image="no-such-image")


def test_the_zones_rescue_image_is_used_and_a_zone_may_declare_rescue_absent(
    openstack_backend, fake_openstack
):
    backend, zone = openstack_backend
    server_id = _running(backend, zone)
    image = next(iter(fake_openstack.image.images))
    backend.options["zones"][zone]["rescue_image"] = image
    backend.rescue_server(server_id)
    assert fake_openstack.compute.servers[nova_id(server_id)].rescue_image == image
    backend.options["zones"][zone]["rescue"] = False
    assert Capability.RESCUE not in backend.capabilities(zone)
    with pytest.raises(Rejected, match="Rescue mode is not available"):
        backend.unrescue_server(server_id)
