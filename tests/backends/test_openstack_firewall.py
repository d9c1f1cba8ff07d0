"""OpenStack specifics of live firewall rules: the server gets a security group of its own and is
taken out of every other; a change made behind the portal's back shows in `server_firewall`; an
apply cut off half-way (a worker killed) is finished by the next; Neutron's 409 for a rule that
exists is taken as done."""

from __future__ import annotations

import pytest

from portal.compute.backends.firewall import same_rules
from portal.compute.backends.openstack_firewall import server_group_name
from tests.backends.test_firewall_contract import SSH_FROM_ONE, WEB, launched

pytestmark = pytest.mark.django_db(transaction=True)


def groups_of(cloud, server_id: str) -> list[str]:
    return list(cloud.compute.servers[server_id].security_groups)


def ingress(cloud, name: str) -> list[dict]:
    (group,) = [g for g in cloud.network.security_groups.values() if g["name"] == name]
    return [r for r in group["security_group_rules"] if r["direction"] == "ingress"]


def test_the_server_gets_a_group_of_its_own_and_leaves_the_launch_group(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    server = launched(backend, zone)
    server_id = server.split(":", 1)[1]
    (launch_group,) = groups_of(fake_openstack, server_id)
    backend.apply_firewall(server, WEB)
    assert groups_of(fake_openstack, server_id) == [server_group_name(server_id)]
    assert len(ingress(fake_openstack, server_group_name(server_id))) == len(WEB)
    assert launch_group in {
        g["name"] for g in fake_openstack.network.security_groups.values()
    }  # shared: kept
    backend.apply_firewall(server, WEB)
    assert len(ingress(fake_openstack, server_group_name(server_id))) == len(WEB)  # no duplicates


def test_a_rule_added_behind_the_portals_back_is_seen_and_removed(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    server = launched(backend, zone)
    server_id = server.split(":", 1)[1]
    backend.apply_firewall(server, SSH_FROM_ONE)
    (group,) = [
        g
        for g in fake_openstack.network.security_groups.values()
        if g["name"] == server_group_name(server_id)
    ]
    fake_openstack.network._rule_create(
        {
            "security_group_id": group["id"],
            "direction": "ingress",
            "ethertype": "IPv4",
            "protocol": "tcp",
            "port_range_min": 3306,
            "port_range_max": 3306,
            "remote_ip_prefix": "0.0.0.0/0",
        }
    )
    assert not same_rules(backend.server_firewall(server), SSH_FROM_ONE)
    backend.apply_firewall(server, SSH_FROM_ONE)
    assert same_rules(backend.server_firewall(server), SSH_FROM_ONE)


def test_an_apply_cut_off_half_way_is_finished_by_the_next(openstack_backend, fake_openstack, monkeypatch):
    backend, zone = openstack_backend
    server = launched(backend, zone)
    server_id = server.split(":", 1)[1]
    calls = []
    real = type(backend)._server_groups

    def killed(self, conn, sid):  # the worker dies after the rules, before the server's groups
        calls.append(sid)
        raise SystemExit("worker killed")

    monkeypatch.setattr(type(backend), "_server_groups", killed)
    with pytest.raises(SystemExit):
        backend.apply_firewall(server, WEB)
    monkeypatch.setattr(type(backend), "_server_groups", real)
    assert calls
    # The cloud still enforces the old rules: the new group is filled but not the server's yet.
    assert same_rules(backend.server_firewall(server), SSH_FROM_ONE)
    backend.apply_firewall(server, WEB)
    assert same_rules(backend.server_firewall(server), WEB)
    assert groups_of(fake_openstack, server_id) == [server_group_name(server_id)]


def test_a_server_in_default_only_shows_rules_the_portal_does_not_hold(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    server = fake_openstack.compute.add_server("made-elsewhere")
    assert backend.server_firewall(f"{zone}:{server.id}") is None  # no portal group: none of ours
