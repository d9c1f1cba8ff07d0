"""What an operator types for a pool: every mistake named at once, next to its field, in plain words."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from portal.ipam.models import AddressPool

pytestmark = pytest.mark.django_db


def _problems(**fields) -> dict[str, list[str]]:
    pool = AddressPool(**({"family": 4, "cidr": "203.0.113.0/24"} | fields))
    with pytest.raises(ValidationError) as refused:
        pool.full_clean()
    return refused.value.message_dict


@pytest.mark.parametrize(
    ("family", "cidr", "message"),
    [
        (4, "", "This field cannot be blank."),
        (4, "203.0.113.0", "Give the prefix length too, e.g. 203.0.113.0/24."),
        (4, "203.0.113.0/33", "An IPv4 prefix is at most /32; /33 does not exist."),
        (6, "2001:db8::/129", "An IPv6 prefix is at most /128; /129 does not exist."),
        (4, "0.0.0.0/0", "A /0 is every address there is, not a pool."),
        (6, "::/0", "A /0 is every address there is, not a pool."),
        (4, "203.0.113.7/24", "203.0.113.7/24 has host bits set: did you mean 203.0.113.0/24?"),
        (4, "2001:db8::/64", "2001:db8::/64 is an IPv6 network, but the pool is IPv4."),
        (6, "203.0.113.0/24", "203.0.113.0/24 is an IPv4 network, but the pool is IPv6."),
        (4, "fra1/24", "“fra1” is not an IPv4 or IPv6 address."),
        (4, "203.0.113.0/x", "“/x” is not a prefix length."),
    ],
)
def test_a_network_that_is_not_a_pool_is_refused_in_plain_words(catalog, family, cidr, message):
    assert _problems(zone=catalog["fra1-a"], family=family, cidr=cidr)["cidr"] == [message]


def test_every_problem_is_named_at_once(catalog):
    AddressPool.objects.create(zone=catalog["fra1-a"], family=4, cidr="203.0.113.0/25")
    problems = _problems(
        zone=catalog["fra1-a"],
        cidr="203.0.113.0/24",
        gateway="198.51.100.1",
        reserved="203.0.113.2-203.0.113.9\n10.0.0.1\n203.0.113.20-203.0.113.10\nnonsense\n2001:db8::1",
    )
    assert problems == {
        "cidr": ["203.0.113.0/24 overlaps the pool 203.0.113.0/25 of this zone."],
        "gateway": ["The gateway 198.51.100.1 is not inside 203.0.113.0/24."],
        "reserved": [
            "Line 2: 10.0.0.1 is not inside 203.0.113.0/24.",
            "Line 3: the range 203.0.113.20-203.0.113.10 ends before it starts.",
            "Line 4: “nonsense” is not an address, a range first-last, or a network.",
            "Line 5: 2001:db8::1 is IPv6; the pool is IPv4.",
        ],
    }


def test_the_gateway_is_not_the_network_or_broadcast_address(catalog):
    assert _problems(zone=catalog["fra1-a"], gateway="203.0.113.0")["gateway"] == [
        "203.0.113.0 is the network's own address, not a gateway."
    ]
    assert _problems(zone=catalog["fra1-a"], gateway="203.0.113.255")["gateway"] == [
        "203.0.113.255 is the network's broadcast address, not a gateway."
    ]


def test_pools_of_other_zones_and_families_may_overlap_and_spellings_are_one(catalog):
    AddressPool.objects.create(zone=catalog["iad1-a"], family=4, cidr="203.0.113.0/24")
    AddressPool.objects.create(zone=catalog["fra1-a"], family=6, cidr="2001:db8::/64")
    pool = AddressPool(
        zone=catalog["fra1-a"],
        family=4,
        cidr="203.0.113.0/24",
        gateway="203.0.113.1",
        reserved="# the routers\n203.0.113.2-203.0.113.9\n203.0.113.240/28\n203.0.113.100",
    )
    pool.full_clean()
    v6 = AddressPool(zone=catalog["fra1-a"], family=6, cidr="2001:DB8:0:1::/64", gateway="2001:DB8:0:1::1")
    v6.full_clean()
    assert (v6.cidr, v6.gateway) == ("2001:db8:0:1::/64", "2001:db8:0:1::1")


def test_a_pool_whose_addresses_are_held_keeps_its_network(catalog):
    from portal.ipam.services import address_allocate
    from tests.factories import InstanceFactory

    pool = AddressPool.objects.create(zone=catalog["fra1-a"], family=4, cidr="203.0.113.0/24")
    address_allocate(zone=pool.zone, family=4, instance=InstanceFactory())
    pool.cidr = "198.51.100.0/24"
    with pytest.raises(ValidationError) as refused:
        pool.full_clean()
    assert refused.value.message_dict["cidr"] == [
        "Servers hold addresses of this pool: its network can't change while they do."
    ]


def test_the_admin_form_shows_every_error_next_to_its_field_and_saves_nothing(admin_client, catalog):
    response = admin_client.post(
        reverse("admin:ipam_addresspool_add"),
        {
            "zone": catalog["fra1-a"].pk,
            "family": 4,
            "cidr": "203.0.113.0/24",
            "gateway": "198.51.100.1",
            "reserved": "10.0.0.1",
            "quarantine_minutes": 60,
            "is_active": "on",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "The gateway 198.51.100.1 is not inside 203.0.113.0/24." in page
    assert "Line 1: 10.0.0.1 is not inside 203.0.113.0/24." in page
    assert not AddressPool.objects.exists()
