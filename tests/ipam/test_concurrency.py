"""Fifty launches at once for the last ten addresses of a zone: exactly ten get one, no address is
handed out twice, the other forty are told the zone has none left.

PostgreSQL only: there concurrent transactions really run side by side (row locks, the partial
unique index); SQLite lets one writer in at a time, so nothing could race there."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from portal.catalog.demo import load_demo_catalog
from portal.catalog.models import Flavor, Image, Zone
from portal.compute.models import Instance
from portal.ipam.models import AddressAllocation, AddressPool
from portal.ipam.services import AddressesExhausted, address_allocate
from tests.factories import ProjectFactory

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL-specific: SQLite admits one writer at a time, so no two allocations overlap",
)
CONTENDERS = 50


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_allocations_for_the_last_ten_addresses():
    load_demo_catalog()
    zone = Zone.objects.get(code="fra1-a")
    project = ProjectFactory()
    pool = AddressPool.objects.create(
        zone=zone, family=4, cidr="198.51.100.0/28", gateway="198.51.100.1", quarantine_minutes=0
    )
    servers = Instance.objects.bulk_create(
        Instance(
            project=project,
            name=f"race-{n}",
            zone=zone,
            flavor=Flavor.objects.get(code="s-1vcpu-1gb"),
            image=Image.objects.get(name="Debian 13"),
            root_disk_gib=25,
        )
        for n in range(CONTENDERS + 3)
    )
    for early in servers[:3]:  # .2-.4 are held: .5-.14 are the last ten
        address_allocate(zone=zone, family=4, instance=early)
    outcomes: list[str] = []
    barrier = threading.Barrier(CONTENDERS)

    def attempt(server):
        try:
            barrier.wait()
            address_allocate(zone=zone, family=4, instance=server, now=timezone.now())
            outcomes.append("got one")
        except AddressesExhausted as exhausted:
            outcomes.append(str(exhausted))
        except Exception as error:  # anything else is the failure to show
            outcomes.append(f"{type(error).__name__}: {error}")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(server,)) for server in servers[3:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    print(Counter(outcomes))
    assert Counter(outcomes) == {"got one": 10, "No addresses left in fra1-a.": 40}
    held = list(AddressAllocation.objects.live().filter(pool=pool).values_list("address", flat=True))
    assert len(held) == len(set(held)) == 13
    assert sorted(held, key=lambda a: int(a.rsplit(".", 1)[1])) == [f"198.51.100.{n}" for n in range(2, 15)]
