"""Which address a server gets: the lowest one nobody holds, never the network, broadcast or gateway
address, nothing reserved, nothing resting in quarantine. Times are passed in, not faked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.ipam.models import AddressAllocation, AddressPool
from portal.ipam.services import AddressesExhausted, address_allocate, address_release, addresses_allocate
from tests.factories import InstanceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool(catalog):
    return AddressPool.objects.create(
        zone=catalog["fra1-a"],
        family=4,
        cidr="192.0.2.0/28",
        gateway="192.0.2.1",
        reserved="192.0.2.2-192.0.2.3\n192.0.2.8/30",
        quarantine_minutes=60,
    )


def _take(pool, count, now=None) -> list[str]:
    servers = [InstanceFactory(zone=pool.zone) for _ in range(count)]
    return [
        a.address for a in addresses_allocate(zone=pool.zone, family=pool.family, instances=servers, now=now)
    ]


def test_the_network_gateway_reserved_and_broadcast_addresses_are_never_handed_out(pool):
    # .0 network, .1 gateway, .2-.3 and .8-.11 reserved, .15 broadcast
    assert _take(pool, 7) == [f"192.0.2.{n}" for n in (4, 5, 6, 7, 12, 13, 14)]
    with pytest.raises(AddressesExhausted):
        _take(pool, 1)
    assert sorted(AddressAllocation.objects.values_list("address", flat=True)) == sorted(
        f"192.0.2.{n}" for n in (4, 5, 6, 7, 12, 13, 14)
    )


def test_the_lowest_free_address_comes_first_and_a_pool_that_cannot_serve_all_serves_none(pool):
    assert _take(pool, 3) == ["192.0.2.4", "192.0.2.5", "192.0.2.6"]
    with pytest.raises(AddressesExhausted, match=r"^No addresses left in fra1-a\.$"):
        _take(pool, 5)  # four are left
    assert AddressAllocation.objects.count() == 3
    assert _take(pool, 4) == ["192.0.2.7", "192.0.2.12", "192.0.2.13", "192.0.2.14"]


def test_a_server_that_holds_an_address_keeps_it(pool):
    server = InstanceFactory(zone=pool.zone)
    first = address_allocate(zone=pool.zone, family=4, instance=server)
    again = address_allocate(zone=pool.zone, family=4, instance=server)
    assert again.pk == first.pk and AddressAllocation.objects.count() == 1


def test_a_returned_address_rests_in_quarantine_then_comes_back(pool):
    t0 = timezone.now()
    server = InstanceFactory(zone=pool.zone)
    assert address_allocate(zone=pool.zone, family=4, instance=server, now=t0).address == "192.0.2.4"
    assert address_release(instance_ids=[server.pk], now=t0) == 1
    assert address_release(instance_ids=[server.pk], now=t0 + timedelta(minutes=5)) == 0  # a no-op
    returned = AddressAllocation.objects.get()
    assert (returned.released_at, returned.quarantined_until) == (t0, t0 + timedelta(minutes=60))

    assert _take(pool, 1, now=t0 + timedelta(minutes=59)) == ["192.0.2.5"]  # .4 still rests
    assert _take(pool, 1, now=t0 + timedelta(minutes=60)) == ["192.0.2.4"]  # its quarantine is over


def test_without_quarantine_a_returned_address_is_free_at_once(pool):
    pool.quarantine_minutes = 0
    pool.save()
    server = InstanceFactory(zone=pool.zone)
    address_allocate(zone=pool.zone, family=4, instance=server)
    address_release(instance_ids=[server.pk])
    assert _take(pool, 1) == ["192.0.2.4"]
    assert AddressAllocation.objects.filter(address="192.0.2.4").count() == 2  # the history stays


def test_a_second_pool_serves_when_the_first_is_full_and_inactive_pools_serve_nothing(pool):
    second = AddressPool.objects.create(zone=pool.zone, family=4, cidr="198.51.100.0/30")
    assert len(_take(pool, 7)) == 7
    assert _take(pool, 1) == ["198.51.100.1"]
    second.is_active = False
    second.save()
    with pytest.raises(AddressesExhausted):
        _take(pool, 1)


def test_ipv6_skips_the_subnet_router_address_and_small_networks_use_every_address(catalog):
    zone = catalog["fra1-a"]
    AddressPool.objects.create(zone=zone, family=6, cidr="2001:db8::/64", gateway="2001:db8::1")
    assert _take(AddressPool.objects.get(family=6), 2) == ["2001:db8::2", "2001:db8::3"]
    AddressPool.objects.create(zone=catalog["iad1-a"], family=4, cidr="192.0.2.0/31")
    assert _take(AddressPool.objects.get(cidr="192.0.2.0/31"), 2) == ["192.0.2.0", "192.0.2.1"]


def test_no_pool_of_the_family_gives_nothing(pool):
    assert addresses_allocate(zone=pool.zone, family=6, instances=[InstanceFactory()]) == []


def test_the_database_refuses_a_second_live_holder_of_one_address(pool):
    now = timezone.now()
    row = {"pool": pool, "family": 4, "address": "192.0.2.4", "allocated_at": now}
    AddressAllocation.objects.create(**row, instance=InstanceFactory())
    with pytest.raises(IntegrityError), transaction.atomic():
        AddressAllocation.objects.create(**row, instance=InstanceFactory())
    # A returned holding is history, not a holder.
    AddressAllocation.objects.update(released_at=now)
    AddressAllocation.objects.create(**row, instance=InstanceFactory())


def test_the_database_refuses_two_live_addresses_of_one_family_for_a_server(pool):
    now = timezone.now()
    server = InstanceFactory()
    AddressAllocation.objects.create(
        pool=pool, family=4, address="192.0.2.4", allocated_at=now, instance=server
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        AddressAllocation.objects.create(
            pool=pool, family=4, address="192.0.2.5", allocated_at=now, instance=server
        )
