"""How the OpenStack backend reports what goes wrong: Nova's faults and refusals in the customer's
words, a cloud that is down, slow or unreachable as Transient, and the pure mappings of Nova's
states and fault messages."""

from __future__ import annotations

import time

import pytest

from portal.compute.backends.base import (
    Rejected,
    Transient,
)
from portal.compute.backends.openstack import OpenStackBackend
from portal.compute.backends.openstack_mapping import (
    NO_CAPACITY,
    plain_fault,
    server_state,
)
from tests.backends.fake_openstack import PASSWORD, backend_options
from tests.backends.openstack_specs import B, settle, spec

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
