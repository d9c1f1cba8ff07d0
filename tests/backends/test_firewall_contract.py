"""Firewall rules applied to a server that runs, and to one that is stopped, on every backend that
declares Capability.FIREWALL (simulated, OpenStack); libvirt declares it absent and refuses. The
same fixtures as test_contract.py (`(backend, zone_code)`)."""

from __future__ import annotations

import time

import pytest

from portal.compute.backends import BackendState, Capability, NotFound, Rejected
from portal.compute.backends.firewall import ALL_INBOUND, same_rules
from tests.backends.test_contract import settle, spec

pytestmark = pytest.mark.django_db(transaction=True)

SSH_FROM_ONE = ({"protocol": "tcp", "port_from": 22, "port_to": 22, "source": "203.0.113.7/32"},)
WEB = (
    {"protocol": "tcp", "port_from": 22, "port_to": 22, "source": "203.0.113.7/32"},
    {"protocol": "tcp", "port_from": 443, "port_to": 443, "source": "0.0.0.0/0"},
    {"protocol": "udp", "port_from": 60000, "port_to": 61000, "source": "2001:db8::/32"},
    {"protocol": "icmp", "port_from": None, "port_to": None, "source": "::/0"},
    {"protocol": "icmp", "port_from": None, "port_to": None, "source": "198.51.100.0/24"},
)
BAD_RULES = [
    ({"protocol": "tcp", "port_from": 70000, "port_to": 70000, "source": "0.0.0.0/0"},),
    ({"protocol": "tcp", "port_from": 443, "port_to": 80, "source": "0.0.0.0/0"},),
    ({"protocol": "tcp", "port_from": 22, "port_to": 22, "source": "not-a-network"},),
    ({"protocol": "gre", "port_from": None, "port_to": None, "source": "0.0.0.0/0"},),
    ({"protocol": "icmp", "port_from": 8, "port_to": 8, "source": "0.0.0.0/0"},),
]


@pytest.fixture(params=["simulated_backend", "openstack_backend"])
def firewall_cloud(request):
    backend, zone = request.getfixturevalue(request.param)
    assert Capability.FIREWALL in backend.capabilities(zone)
    return backend, zone


def launched(backend, zone, rules=SSH_FROM_ONE) -> str:
    asked = spec(zone)
    asked = type(asked)(**{**asked.__dict__, "firewall_rules": rules})
    backend_id = backend.create_server(asked).backend_id
    settle(backend, backend_id, BackendState.RUNNING)
    return backend_id


def test_rules_applied_to_a_running_then_a_stopped_server(firewall_cloud):
    backend, zone = firewall_cloud
    server = launched(backend, zone)
    assert same_rules(backend.server_firewall(server), SSH_FROM_ONE)

    backend.apply_firewall(server, WEB)
    assert same_rules(backend.server_firewall(server), WEB)
    backend.apply_firewall(server, WEB)  # the same again: nothing changes, no error
    assert same_rules(backend.server_firewall(server), WEB)

    backend.apply_firewall(server, ())  # drops all inbound traffic
    assert same_rules(backend.server_firewall(server), ())
    backend.apply_firewall(server, ALL_INBOUND)
    assert same_rules(backend.server_firewall(server), ALL_INBOUND)

    backend.stop_server(server)
    settle(backend, server, BackendState.STOPPED)
    backend.apply_firewall(server, SSH_FROM_ONE)
    assert same_rules(backend.server_firewall(server), SSH_FROM_ONE)
    backend.delete_server(server)


def test_a_launch_without_rules_allows_all_inbound(firewall_cloud):
    backend, zone = firewall_cloud
    server = launched(backend, zone, rules=())
    assert same_rules(backend.server_firewall(server), ALL_INBOUND)


@pytest.mark.parametrize("bad", BAD_RULES)
def test_a_rule_the_cloud_cannot_take_is_refused_and_nothing_changes(firewall_cloud, bad):
    backend, zone = firewall_cloud
    server = launched(backend, zone)
    with pytest.raises(Rejected):
        backend.apply_firewall(server, WEB + bad)
    assert same_rules(backend.server_firewall(server), SSH_FROM_ONE)


def test_applying_to_a_server_gone_is_not_found(firewall_cloud):
    backend, zone = firewall_cloud
    server = launched(backend, zone)
    backend.delete_server(server)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # a deletion may take a moment to land
        try:
            backend.get_server(server)
        except NotFound:
            break
        time.sleep(0.2)
    with pytest.raises(NotFound):
        backend.apply_firewall(server, WEB)


def test_libvirt_declares_no_firewall_and_refuses_rules(libvirt_backend):
    backend, zone = libvirt_backend
    assert Capability.FIREWALL not in backend.capabilities(zone)
    with pytest.raises(Rejected, match="Firewall rules are not available"):
        backend.apply_firewall(f"{zone}:nothing", WEB)
    assert backend.server_firewall(f"{zone}:nothing") is None
