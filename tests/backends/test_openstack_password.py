"""Root password reset on OpenStack against the fake Nova over real HTTP: changePassword sets the
guest's password on an ACTIVE server, a wrong state is Nova's 409 in plain words, a guest without an
agent (409) or a driver without the call (501) is a plain refusal, not a retry, and the zone's
settings can declare it absent."""

from __future__ import annotations

import pytest
from openstack import exceptions

from portal.compute.backends.base import Capability, Rejected
from tests.backends.openstack_specs import B, nova_id, settle, spec


def _running(backend, zone):
    created = backend.create_server(spec(zone))
    settle(backend, created.backend_id, B.RUNNING)
    return created.backend_id


def test_the_password_is_set_in_the_guest(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    assert Capability.PASSWORD_RESET in backend.capabilities(zone)
    server_id = _running(backend, zone)
    backend.set_password(server_id, "root", "S3cret-and-long")
    assert fake_openstack.compute.servers[nova_id(server_id)].admin_password == "S3cret-and-long"
    assert (nova_id(server_id), "changePassword") in fake_openstack.compute.actions


def test_a_stopped_or_building_server_is_refused_in_plain_words(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    with fake_openstack.frozen():
        created = backend.create_server(spec(zone))
        with pytest.raises(Rejected) as refused:
            backend.set_password(created.backend_id, "root", "x" * 20)
    assert "still being created" in refused.value.user_message
    assert "task_state" in refused.value.detail  # Nova's words, for the operator
    server_id = _running(backend, zone)
    backend.stop_server(server_id)
    settle(backend, server_id, B.STOPPED)
    with pytest.raises(Rejected, match="stopped right now: its password can be reset while it runs"):
        backend.set_password(server_id, "root", "x" * 20)
    assert fake_openstack.compute.servers[nova_id(server_id)].admin_password is None


@pytest.mark.parametrize(("knob", "nova_says"), [("agent", "QEMU guest agent"), ("driver", "Unable to set")])
def test_a_guest_or_hypervisor_that_cannot_is_a_plain_refusal(
    openstack_backend, fake_openstack, knob, nova_says
):
    backend, zone = openstack_backend
    server_id = _running(backend, zone)
    fake_openstack.compute.password_unsupported = knob
    with pytest.raises(Rejected) as refused:  # Rejected, not Transient: asking again won't help
        backend.set_password(server_id, "root", "x" * 20)
    assert "does not run the agent" in refused.value.user_message
    assert nova_says in refused.value.detail


def test_the_fake_answers_like_nova(openstack_backend, fake_openstack):
    """202 without a body; 400 without (or with a blank) adminPass; 404 for an unknown server."""
    backend, zone = openstack_backend
    server_id = _running(backend, zone)
    conn = backend._connection(zone)
    url = f"/servers/{nova_id(server_id)}/action"
    answer = conn.compute.post(url, json={"changePassword": {"adminPass": "abc-def-ghi"}})
    assert answer.status_code == 202 and not answer.content
    for body in ({"changePassword": {}}, {"changePassword": {"adminPass": "  "}}, {"changePassword": None}):
        assert conn.compute.post(url, json=body).status_code == 400
    assert (
        conn.compute.post("/servers/no-such/action", json={"changePassword": {"adminPass": "a"}}).status_code
        == 404
    )
    with pytest.raises(exceptions.NotFoundException):
        conn.compute.change_server_password("no-such-server", "abc")


def test_a_zone_may_declare_it_absent(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    server_id = _running(backend, zone)
    backend.options["zones"][zone]["password_reset"] = False
    assert Capability.PASSWORD_RESET not in backend.capabilities(zone)
    with pytest.raises(Rejected, match="Root password reset is not available"):
        backend.set_password(server_id, "root", "x" * 20)
    assert (nova_id(server_id), "changePassword") not in fake_openstack.compute.actions
