"""One private-network lifecycle, every backend that declares Capability.PRIVATE_NETWORKS (the
simulated cloud and OpenStack, through its fake): a network made with its subnet, adopted by its
key, two servers attached with distinct addresses inside the range, deletion refused while a server
is on it, a detach, a deleted server's port gone with it, the network deleted. libvirt does not
declare the capability, and says so in the customer's words."""

from __future__ import annotations

import ipaddress
import time
import uuid

import pytest

from portal.compute.backends import (
    BackendState,
    Capability,
    NetworkCloudState,
    NetworkSpec,
    NotFound,
    Rejected,
    not_available,
)
from tests.backends.test_contract import settle, spec
from tests.backends.test_storage_contract import gone

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["simulated_backend", "openstack_backend"])
def network_cloud(request):
    backend, zone = request.getfixturevalue(request.param)
    assert Capability.PRIVATE_NETWORKS in backend.capabilities(zone)
    return backend, zone


def ports_until(backend, network_id: str, want, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ports = backend.get_network(network_id).ports
        if want(ports):
            return ports
        time.sleep(0.2)
    pytest.fail(f"ports never as wanted: {ports}")


def test_a_network_holds_two_servers_at_distinct_addresses_inside_its_range(network_cloud):
    backend, zone = network_cloud
    key = str(uuid.uuid4())
    made = backend.create_network(
        NetworkSpec(idempotency_key=key, name="lan", zone=zone, cidr="10.20.0.0/24")
    )
    assert backend.find_network(zone, key).backend_id == made.backend_id  # a retried create adopts it
    assert backend.find_network(zone, str(uuid.uuid4())) is None
    network = backend.get_network(made.backend_id)
    assert (network.state, network.cidr, network.ports) == (NetworkCloudState.AVAILABLE, "10.20.0.0/24", {})
    assert made.backend_id in {n.backend_id for n in backend.list_networks(zone)}

    servers = [backend.create_server(spec(zone, name=f"net-{i}")).backend_id for i in range(2)]
    for server in servers:
        settle(backend, server, BackendState.RUNNING)
        backend.attach_network(made.backend_id, server)
    ports = ports_until(backend, made.backend_id, lambda p: set(p) == set(servers))
    backend.attach_network(made.backend_id, servers[0])  # again: the same port, no second
    assert backend.get_network(made.backend_id).ports == ports
    addresses = list(ports.values())
    assert len(set(addresses)) == 2
    for address in addresses:
        assert ipaddress.ip_address(address) in ipaddress.ip_network("10.20.0.0/24")
        assert address != "10.20.0.1"  # the gateway's

    with pytest.raises(Rejected):  # a server is on it, as Neutron's 409
        backend.delete_network(made.backend_id)
    backend.detach_network(made.backend_id, servers[0])
    ports_until(backend, made.backend_id, lambda p: set(p) == {servers[1]})
    backend.detach_network(made.backend_id, servers[0])  # not attached: no error

    backend.delete_server(servers[1])  # its port goes with it
    ports_until(backend, made.backend_id, lambda p: p == {})
    backend.delete_network(made.backend_id)
    gone(lambda: backend.get_network(made.backend_id))
    backend.delete_network(made.backend_id)  # already gone: no error
    backend.delete_server(servers[0])


def test_a_freed_address_is_given_again_and_none_twice(network_cloud):
    backend, zone = network_cloud
    net = backend.create_network(NetworkSpec(str(uuid.uuid4()), "tiny", zone, "192.168.7.0/29"))
    servers = [backend.create_server(spec(zone, name=f"tiny-{i}")).backend_id for i in range(2)]
    for server in servers:
        settle(backend, server, BackendState.RUNNING)
        backend.attach_network(net.backend_id, server)
    ports = ports_until(backend, net.backend_id, lambda p: len(p) == 2)
    assert sorted(ports.values()) == ["192.168.7.2", "192.168.7.3"]
    backend.detach_network(net.backend_id, servers[0])
    ports_until(backend, net.backend_id, lambda p: len(p) == 1)
    backend.attach_network(net.backend_id, servers[0])
    ports = ports_until(backend, net.backend_id, lambda p: len(p) == 2)
    assert sorted(ports.values()) == ["192.168.7.2", "192.168.7.3"]
    for server in servers:
        backend.delete_server(server)


def test_a_server_that_does_not_exist_cannot_join(network_cloud):
    backend, zone = network_cloud
    net = backend.create_network(NetworkSpec(str(uuid.uuid4()), "lan", zone, "10.9.0.0/24"))
    with pytest.raises((NotFound, Rejected)):
        backend.attach_network(net.backend_id, f"{zone}:{uuid.uuid4()}" if ":" in net.backend_id else "nope")
    with pytest.raises(NotFound):
        backend.get_network(net.backend_id + "x")


def test_libvirt_declares_no_private_networks(db, catalog):
    from portal.compute.backends.libvirt import LibvirtBackend

    backend = LibvirtBackend("libvirt", uri="test:///default")
    zone = "fra1-a"
    assert Capability.PRIVATE_NETWORKS not in backend.capabilities(zone)
    with pytest.raises(Rejected) as refused:
        backend.create_network(NetworkSpec(str(uuid.uuid4()), "lan", zone, "10.0.0.0/24"))
    assert refused.value.user_message == not_available(Capability.PRIVATE_NETWORKS, zone).user_message
    assert refused.value.user_message == "Private networks are not available in fra1-a."
