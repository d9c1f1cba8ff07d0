"""Servers launched in a zone with address pools get their addresses from them (on the simulated
cloud, which takes them: Capability.OPERATOR_ADDRESSES); terminate returns them; a used-up zone
refuses the launch in plain words and alerts the operators."""

from __future__ import annotations

import ipaddress

import pytest
from django.urls import reverse

from portal.compute import services
from portal.compute.models import Instance, Operation, SimulatedServer
from portal.ipam.models import AddressAllocation, AddressPool, ExhaustionAlert
from tests.steps import drive


@pytest.fixture
def pools(catalog):
    zone = catalog["fra1-a"]
    return (
        AddressPool.objects.create(zone=zone, family=4, cidr="203.0.113.0/29", gateway="203.0.113.1"),
        AddressPool.objects.create(zone=zone, family=6, cidr="2001:db8:10::/64", gateway="2001:db8:10::1"),
    )


def _launched(launch, **asked) -> list[Instance]:
    batch = launch(**asked)
    drive(*Operation.objects.filter(instance__batch=batch))
    return list(Instance.objects.filter(batch=batch).order_by("name"))


def test_a_launch_in_a_zone_with_pools_gets_distinct_addresses_of_both_families(
    launch, pools, owner, client_as
):
    servers = _launched(launch, count=3)
    assert [s.status for s in servers] == ["running"] * 3
    assert [s.addresses for s in servers] == [
        ["203.0.113.2", "2001:db8:10::2"],
        ["203.0.113.3", "2001:db8:10::3"],
        ["203.0.113.4", "2001:db8:10::4"],
    ]
    held = AddressAllocation.objects.live().order_by("family", "address")
    assert [(a.instance.name, a.address) for a in held] == [
        ("web-1", "203.0.113.2"),
        ("web-2", "203.0.113.3"),
        ("web-3", "203.0.113.4"),
        ("web-1", "2001:db8:10::2"),
        ("web-2", "2001:db8:10::3"),
        ("web-3", "2001:db8:10::4"),
    ]
    # What the cloud configured is what the pools gave.
    assert sorted(SimulatedServer.objects.values_list("address", "address6")) == [
        ("203.0.113.2", "2001:db8:10::2"),
        ("203.0.113.3", "2001:db8:10::3"),
        ("203.0.113.4", "2001:db8:10::4"),
    ]
    page = client_as(owner).get(servers[0].get_absolute_url()).content.decode()
    assert "203.0.113.2" in page and "IPv6 address" in page and "2001:db8:10::2" in page


def test_terminate_returns_the_addresses_to_rest_in_quarantine(launch, pools, access):
    (server,) = _launched(launch)
    terminate = services.instance_action(
        access=access, instance=server, action="terminate", confirm_name="web"
    )
    drive(terminate)
    server.refresh_from_db()
    assert server.status == "terminated" and server.addresses == []
    returned = AddressAllocation.objects.filter(instance=server)
    assert returned.count() == 2 and not returned.live().exists()
    for allocation in returned:
        assert allocation.quarantined_until - allocation.released_at == allocation.pool.quarantine
    # The next server does not get them while they rest.
    (second,) = _launched(launch, name="next")
    assert second.addresses == ["203.0.113.3", "2001:db8:10::3"]


def test_a_zone_without_pools_keeps_the_clouds_own_addresses(launch, catalog):
    (server,) = _launched(launch)
    assert len(server.addresses) == 1
    assert ipaddress.ip_address(server.addresses[0]) in ipaddress.ip_network("100.64.0.0/10")
    assert not AddressAllocation.objects.exists()


def test_a_zone_whose_cloud_does_not_take_the_pools_addresses_ignores_them(launch, pools, catalog):
    zone = catalog["fra1-a"]
    zone.backend_settings = {"absent": ["operator_addresses"]}
    zone.save()
    (server,) = _launched(launch)
    assert ipaddress.ip_address(server.public_address) in ipaddress.ip_network("100.64.0.0/10")
    assert not AddressAllocation.objects.exists()


def _refused(access, catalog, name, count=1) -> services.ComputeRefused:
    from portal.catalog.models import Flavor, Image

    req = services.LaunchRequest(
        name=name,
        count=count,
        zone=catalog["fra1-a"],
        flavor=Flavor.objects.get(code="s-1vcpu-2gb"),
        image=Image.objects.get(name="Debian 13"),
        root_disk_gib=50,
    )
    with pytest.raises(services.ComputeRefused) as refused:
        services.instance_launch(access=access, req=req)
    return refused.value


def test_an_exhausted_zone_refuses_the_launch_in_plain_words_and_alerts_the_operators(
    launch, pools, access, catalog, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.ADMINS = ["noc@example.com"]
    _launched(launch, count=5)  # .2-.6: the /29's last address
    with django_capture_on_commit_callbacks(execute=True):
        refused = _refused(access, catalog, "more", count=2)
    assert (refused.message, refused.field, refused.status) == (
        "No addresses left in fra1-a.",
        "zone",
        409,
    )
    assert Instance.objects.count() == 5 and AddressAllocation.objects.count() == 10  # nothing changed
    alert = ExhaustionAlert.objects.get()
    assert (alert.zone.code, alert.family, alert.refusals, alert.resolved_at) == ("fra1-a", 4, 1, None)
    assert [m.subject for m in mailoutbox] == ["[Django] No IPv4 addresses left in fra1-a"]
    assert "noc@example.com" in mailoutbox[0].to

    with django_capture_on_commit_callbacks(execute=True):
        _refused(access, catalog, "again")
    alert.refresh_from_db()
    assert alert.refusals == 2 and len(mailoutbox) == 1  # one mail per open alert


def test_the_wizard_says_so_next_to_the_zone(pools, project, owner, client_as, catalog, knobs):
    from portal.catalog.models import Flavor, Image

    pools[0].reserved = "203.0.113.2-203.0.113.6"
    pools[0].save()
    response = client_as(owner).post(
        reverse("compute:launch", args=[project.organization.slug, project.slug]),
        {
            "name": "web",
            "count": 1,
            "zone": catalog["fra1-a"].pk,
            "image": Image.objects.get(name="Debian 13").pk,
            "flavor": Flavor.objects.get(code="s-1vcpu-2gb").pk,
            "allow_all_inbound": "on",
        },
    )
    assert response.status_code == 409
    assert "No addresses left in fra1-a." in response.content.decode()
    assert not Instance.objects.exists()
    assert ExhaustionAlert.objects.get().refusals == 1
