"""The fake cloud's Neutron networks, subnets and ports, and Nova's `os-interface`, refuse wrong
requests as the real ones do (driven through openstacksdk directly), and the backend words those
refusals for the customer."""

from __future__ import annotations

import uuid

import pytest
from openstack import exceptions as sdk_exceptions

from portal.compute.backends import NetworkCloudState, NetworkSpec, Rejected
from tests.backends.openstack_specs import B, nova_id, settle, spec


@pytest.fixture
def conn(openstack_backend):
    backend, zone = openstack_backend
    return backend._connection(zone)


def test_subnets_overlapping_in_one_network_are_refused_and_bad_cidrs_too(conn):
    network = conn.network.create_network(name="lan")
    conn.network.create_subnet(network_id=network.id, cidr="10.1.0.0/24", ip_version=4)
    with pytest.raises(sdk_exceptions.BadRequestException, match="overlaps with another subnet"):
        conn.network.create_subnet(network_id=network.id, cidr="10.1.0.128/25", ip_version=4)
    with pytest.raises(sdk_exceptions.BadRequestException, match="not a valid IP subnet"):
        conn.network.create_subnet(network_id=network.id, cidr="10.1.0.0/33", ip_version=4)
    other = conn.network.create_network(name="other")  # another network may reuse the range
    conn.network.create_subnet(network_id=other.id, cidr="10.1.0.0/24", ip_version=4)
    with pytest.raises(sdk_exceptions.NotFoundException):
        conn.network.create_subnet(network_id=str(uuid.uuid4()), cidr="10.2.0.0/24", ip_version=4)


def test_ports_get_distinct_addresses_until_none_is_left(conn):
    network = conn.network.create_network(name="tiny")
    subnet = conn.network.create_subnet(network_id=network.id, cidr="192.168.9.0/29", ip_version=4)
    assert subnet.gateway_ip == "192.168.9.1"
    addresses = [conn.network.create_port(network_id=network.id).fixed_ips[0]["ip_address"] for _ in range(5)]
    assert addresses == [f"192.168.9.{i}" for i in range(2, 7)]
    with pytest.raises(sdk_exceptions.ConflictException, match="No more IP addresses"):
        conn.network.create_port(network_id=network.id)


def test_a_network_with_a_server_on_it_is_in_use(openstack_backend, conn, fake_openstack):
    backend, zone = openstack_backend
    net = backend.create_network(NetworkSpec(str(uuid.uuid4()), "lan", zone, "10.5.0.0/24"))
    with fake_openstack.frozen():
        server = backend.create_server(spec(zone)).backend_id
        with pytest.raises(Rejected, match="busy"):  # Nova: no interface on a building server
            backend.attach_network(net.backend_id, server)
    assert backend.get_network(net.backend_id).ports == {}
    assert list(conn.network.ports(network_id=net.backend_id.partition(":")[2])) == []  # none left behind
    settle(backend, server, B.RUNNING)
    backend.attach_network(net.backend_id, server)
    network_id = net.backend_id.partition(":")[2]
    with pytest.raises(sdk_exceptions.ConflictException, match="one or more ports still in use"):
        conn.network.delete_network(network_id)
    with pytest.raises(Rejected, match="detach them first"):
        backend.delete_network(net.backend_id)
    port = next(iter(conn.network.ports(network_id=network_id)))
    with pytest.raises(sdk_exceptions.ConflictException, match="still in use"):  # Nova: bound already
        conn.compute.create_server_interface(nova_id(server), port_id=port.id)
    backend.delete_server(server)
    # Nova leaves the port the portal made, unbound: the network is still in use for Neutron ...
    with pytest.raises(sdk_exceptions.ConflictException):
        conn.network.delete_network(network_id)
    backend.delete_network(net.backend_id)  # ... the backend deletes its leftover port first
    assert network_id not in fake_openstack.network.networks


def test_a_create_whose_answer_was_lost_is_adopted_and_finished(openstack_backend, conn):
    backend, zone = openstack_backend
    key = str(uuid.uuid4())
    # A worker died after Neutron made the network and before its subnet: the retry finishes it.
    conn.network.create_network(name="lan", description=f"portal-network:{key}@{zone}")
    assert backend.find_network(zone, key).state == NetworkCloudState.CREATING
    state = backend.create_network(NetworkSpec(key, "lan", zone, "10.6.0.0/24"))
    assert (state.state, state.cidr) == (NetworkCloudState.AVAILABLE, "10.6.0.0/24")
    assert backend.create_network(NetworkSpec(key, "lan", zone, "10.6.0.0/24")).backend_id == state.backend_id
    assert len([n for n in conn.network.networks() if key in (n.description or "")]) == 1
