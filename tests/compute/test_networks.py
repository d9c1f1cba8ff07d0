"""Private networks through their services and the one pipeline (tests/steps.py) on the simulated
cloud: bad ranges refused all at once, overlaps refused, the residency policy and a zone without the
capability refuse with their reason, two servers get distinct addresses inside the range, roles,
repeats are no-ops, delete refused while servers are on it, networks chosen at launch joined once
the server runs, a terminated server leaves its networks."""

from __future__ import annotations

import ipaddress

import pytest
from django.core.exceptions import PermissionDenied

from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Jurisdiction
from portal.compute.models import (
    Network,
    NetworkPort,
    NetworkStatus,
    Operation,
    PortStatus,
    SimulatedNetwork,
)
from portal.compute.services import networks as svc
from portal.compute.services.common import ComputeRefused
from portal.residency.models import ResidencyPolicy
from portal.residency.placement import PlacementDenied
from portal.tenancy.access import project_access
from tests.steps import drive


@pytest.fixture
def create(access, catalog, knobs, django_capture_on_commit_callbacks):
    def go(name="lan", cidr="10.20.0.0/24", zone="fra1-a", who=None) -> Operation:
        with django_capture_on_commit_callbacks():
            return svc.network_create(access=who or access, name=name, zone=catalog[zone], cidr=cidr)

    return go


@pytest.fixture
def network(create) -> Network:
    op = create()
    drive(op)
    return Network.objects.get(pk=op.network_id)


@pytest.fixture
def servers(launch):
    batch = launch(name="web", count=2)
    drive(*Operation.objects.filter(instance__batch=batch))
    return list(batch.instances.order_by("name"))


def _refused(call) -> ComputeRefused:
    with pytest.raises(ComputeRefused) as refused:
        call()
    return refused.value


@pytest.mark.parametrize(
    ("cidr", "said"),
    [
        ("10.0.0.0/0", "/0 is every address there is"),
        ("0.0.0.0/0", "/0 is every address there is"),
        ("10.0.0.0/33", "/33 is no IPv4 prefix"),
        ("8.8.8.0/24", "8.8.8.0/24 is not a private range"),
        ("10.0.0.0/30", "A /30 is too small for servers"),
        ("10.0.0.0/8", "A /8 is larger than a network takes"),
        ("10.0.0.5/24", "has host bits set: the range starts at 10.0.0.0/24"),
        ("10.0.0.0", "Write the range as an address and a prefix"),
        ("fd00::/64", "is an IPv6 range: private networks are IPv4"),
        ("banana/24", "is not an IPv4 range"),
    ],
)
def test_bad_ranges_are_refused_in_plain_words(create, cidr, said):
    refused = _refused(lambda: create(cidr=cidr))
    said_all = [p.message for p in refused.problems]
    assert refused.status == 400 and any(said in m for m in said_all), said_all
    assert not Network.objects.exists() and not Operation.objects.exists()


def test_every_problem_is_said_at_once(create):
    refused = _refused(lambda: create(name="Bad Name!", cidr="8.8.8.0/30"))
    fields = [(p.field, p.message) for p in refused.problems]
    assert [f for f, _ in fields] == ["name", "cidr", "cidr"]
    assert "not a private range" in fields[1][1] and "too small" in fields[2][1]


def test_a_range_overlapping_another_network_of_the_project_is_refused(create, network):
    refused = _refused(lambda: create(name="lan2", cidr="10.20.0.128/25"))
    assert refused.status == 409
    assert refused.message == "10.20.0.128/25 overlaps lan (10.20.0.0/24): choose another range."
    refused = _refused(lambda: create(name="lan", cidr="10.30.0.0/24"))
    assert "already has a network named “lan”" in refused.message
    create(name="lan2", cidr="10.21.0.0/24")  # next to it is fine


def test_create_and_join_two_servers_with_distinct_addresses(
    create, network, servers, access, django_capture_on_commit_callbacks
):
    assert network.status == NetworkStatus.AVAILABLE and network.backend_id.startswith("simnet-")
    assert SimulatedNetwork.objects.get(backend_id=network.backend_id).cidr == "10.20.0.0/24"
    with django_capture_on_commit_callbacks():
        ops = [svc.network_attach(access=access, network=network, instance=s) for s in servers]
    with django_capture_on_commit_callbacks():  # asked again while under way: the same operation
        assert svc.network_attach(access=access, network=network, instance=servers[0]) == ops[0]
    drive(*ops)
    ports = list(NetworkPort.objects.filter(network=network).order_by("instance__name"))
    assert [p.status for p in ports] == [PortStatus.ATTACHED] * 2
    addresses = {p.address for p in ports}
    assert len(addresses) == 2 and all(
        ipaddress.ip_address(a) in ipaddress.ip_network("10.20.0.0/24") for a in addresses
    )
    refused = _refused(lambda: svc.network_attach(access=access, network=network, instance=servers[0]))
    assert refused.message == "web-1 is already on lan."
    assert AuditEvent.objects.filter(action=AuditAction.NETWORK_ATTACHED).count() == 2

    refused = _refused(lambda: svc.network_delete(access=access, network=network))
    assert (
        refused.status == 409
        and refused.message == "lan still has servers on it (web-1, web-2): detach them first."
    )
    with django_capture_on_commit_callbacks():
        detach = svc.network_detach(access=access, network=network, instance=servers[0])
        assert svc.network_detach(access=access, network=network, instance=servers[0]) == detach
    drive(detach)
    assert network.ports.get(instance=servers[0]).status == PortStatus.DETACHED
    assert set(SimulatedNetwork.objects.get(backend_id=network.backend_id).ports) == {servers[1].backend_id}


def test_delete_once_empty(network, access, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        op = svc.network_delete(access=access, network=network)
        assert svc.network_delete(access=access, network=network) == op
    drive(op)
    network.refresh_from_db()
    assert network.status == NetworkStatus.DELETED and network.deleted_at
    assert SimulatedNetwork.objects.get(backend_id=network.backend_id).deleted
    assert AuditEvent.objects.filter(action=AuditAction.NETWORK_DELETED).count() == 1


def test_a_viewer_may_not_and_another_zone_cannot(network, servers, viewer, project, catalog, launch, access):
    as_viewer = project_access(viewer, project.organization.slug, project.slug)
    with pytest.raises(PermissionDenied):
        svc.network_create(access=as_viewer, name="x", zone=catalog["fra1-a"], cidr="10.50.0.0/24")
    with pytest.raises(PermissionDenied):
        svc.network_attach(access=as_viewer, network=network, instance=servers[0])
    with pytest.raises(PermissionDenied):
        svc.network_delete(access=as_viewer, network=network)
    other_zone = next(code for code in catalog if code != "fra1-a" and catalog[code].region.is_active)
    batch = launch(name="far", zone=other_zone)
    drive(Operation.objects.get(instance__batch=batch))
    far = batch.instances.get()
    refused = _refused(lambda: svc.network_attach(access=access, network=network, instance=far))
    assert "a server can only join networks of its own zone" in refused.message


def test_a_zone_without_private_networks_says_so(create, catalog):
    zone = catalog["fra1-a"]
    zone.backend_settings = {"absent": ["private_networks"]}
    zone.save()
    refused = _refused(create)
    assert refused.message == "Private networks are not available in fra1-a." and refused.status == 409
    assert not Network.objects.exists()


def test_the_residency_policy_applies(create, org, catalog):
    policy = ResidencyPolicy.objects.create(organization=org, name="US only")
    policy.jurisdictions.set(Jurisdiction.objects.filter(code="us"))
    with pytest.raises(PlacementDenied):
        create()
    assert not Network.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.PLACEMENT_DENIED).exists()


def test_networks_chosen_at_launch_are_joined_once_the_server_runs(network, launch):
    batch = launch(name="app", count=2, networks=(network,))
    assert set(NetworkPort.objects.values_list("status", flat=True)) == {PortStatus.WAITING}
    drive(*Operation.objects.filter(instance__batch=batch))
    joins = Operation.objects.filter(network=network, action="network_attach")
    assert joins.count() == 2
    drive(*joins)
    ports = NetworkPort.objects.filter(network=network)
    assert {p.status for p in ports} == {PortStatus.ATTACHED} and len({p.address for p in ports}) == 2


def test_a_terminated_server_leaves_its_networks(
    network, servers, access, django_capture_on_commit_callbacks
):
    from portal.compute import services

    with django_capture_on_commit_callbacks():
        join = svc.network_attach(access=access, network=network, instance=servers[0])
    drive(join)
    with django_capture_on_commit_callbacks():
        services.instance_action(access=access, instance=servers[0], action="terminate", confirm_name="web-1")
    drive(Operation.objects.get(instance=servers[0], action="terminate"))
    assert network.ports.get(instance=servers[0]).status == PortStatus.DETACHED
    assert SimulatedNetwork.objects.get(backend_id=network.backend_id).ports == {}


def test_the_reconciler_notices_a_port_the_cloud_lost(
    network, servers, access, django_capture_on_commit_callbacks
):
    from portal.compute import reconciler
    from portal.compute.reconciler_networks import PORT_LOST

    with django_capture_on_commit_callbacks():
        ops = [svc.network_attach(access=access, network=network, instance=s) for s in servers]
    drive(*ops)
    assert reconciler.reconcile().drifted == []  # the cloud agrees: nothing changes
    row = SimulatedNetwork.objects.get(backend_id=network.backend_id)
    row.ports = {k: v for k, v in row.ports.items() if k != servers[0].backend_id}  # deleted in the cloud
    row.save(update_fields=["ports"])

    assert reconciler.reconcile().drifted == [str(servers[0].pk)]
    lost, kept = network.ports.get(instance=servers[0]), network.ports.get(instance=servers[1])
    assert (lost.status, lost.fault_message, kept.status) == (PortStatus.ERROR, PORT_LOST, PortStatus.ATTACHED)
    event = AuditEvent.objects.get(action=AuditAction.INSTANCE_CHANGED_OUTSIDE, target_id=str(servers[0].pk))
    assert event.changes == {"network": ["lan", None]}
    assert reconciler.reconcile().drifted == []  # recorded once

    with django_capture_on_commit_callbacks():  # joined again: a new port replaces the failed one
        drive(svc.network_attach(access=access, network=network, instance=servers[0]))
    assert network.ports.filter(instance=servers[0], status=PortStatus.ATTACHED).count() == 1
