"""What an operator reads in admin: each pool's held, resting and free counts, and who holds what."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.ipam.models import AddressPool
from portal.ipam.services import address_allocate, address_release
from tests.factories import InstanceFactory

pytestmark = pytest.mark.django_db


def _cells(page: str, css: str) -> list[str]:
    return re.findall(rf'<td class="field-{css}">([^<]*)</td>', page)


def test_pools_show_held_resting_and_free_and_allocations_who_holds_them(admin_client, project, catalog):
    zone = catalog["fra1-a"]
    AddressPool.objects.create(
        zone=zone, family=4, cidr="192.0.2.0/28", gateway="192.0.2.1", reserved="192.0.2.2-192.0.2.3"
    )
    servers = [InstanceFactory(project=project, name=f"db-{n}") for n in range(3)]
    for server in servers:
        address_allocate(zone=zone, family=4, instance=server)
    address_release(instance_ids=[servers[0].pk])

    page = admin_client.get(reverse("admin:ipam_addresspool_changelist")).content.decode()
    # 16 addresses less network, broadcast, gateway and two reserved: 11, of which 2 held, 1 resting.
    assert (_cells(page, "held"), _cells(page, "resting"), _cells(page, "free")) == (["2"], ["1"], ["8"])

    url = reverse("admin:ipam_addressallocation_changelist")
    page = admin_client.get(url, {"state": "held"}).content.decode()
    assert _cells(page, "server") == ["db-2", "db-1"]
    assert _cells(page, "project") == [project.name] * 2
    assert _cells(page, "organization") == [project.organization.name] * 2
    resting = admin_client.get(url, {"state": "resting"}).content.decode()
    assert _cells(resting, "server") == ["db-0"] and _cells(resting, "state") == ["in quarantine"]
    assert (
        admin_client.get(url, {"pool__zone__id__exact": catalog["iad1-a"].pk})
        .content.decode()
        .count("field-server")
        == 0
    )


def test_allocations_are_read_only(admin_client, catalog):
    pool = AddressPool.objects.create(zone=catalog["fra1-a"], family=4, cidr="192.0.2.0/28")
    allocation = address_allocate(zone=pool.zone, family=4, instance=InstanceFactory(), now=timezone.now())
    change = reverse("admin:ipam_addressallocation_change", args=[allocation.pk])
    assert admin_client.get(change).status_code == 200
    before = allocation.allocated_at
    admin_client.post(change, {"address": "192.0.2.9", "allocated_at": before - timedelta(days=1)})
    allocation.refresh_from_db()
    assert (allocation.address, allocation.allocated_at) == ("192.0.2.1", before)
    assert admin_client.get(reverse("admin:ipam_addressallocation_add")).status_code == 403
    delete = reverse("admin:ipam_addressallocation_delete", args=[allocation.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403


def test_a_pool_page_says_whether_the_zones_cloud_uses_it(admin_client, catalog):
    pool = AddressPool.objects.create(zone=catalog["fra1-a"], family=4, cidr="192.0.2.0/28")
    change = reverse("admin:ipam_addresspool_change", args=[pool.pk])
    assert "Yes: servers launched in fra1-a get their addresses" in admin_client.get(change).content.decode()
    zone = catalog["fra1-a"]
    zone.backend_settings = {"absent": ["operator_addresses"]}
    zone.save()
    assert (
        "No: the cloud of fra1-a (simulated) picks its own addresses"
        in admin_client.get(change).content.decode()
    )
