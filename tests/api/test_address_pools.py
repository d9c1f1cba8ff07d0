"""The API launches from the operator's address pools like the wizard: the addresses in the
answer, and a used-up zone refused with the same plain sentence."""

from __future__ import annotations

from portal.compute.models import Instance, Operation
from portal.ipam.models import AddressPool, ExhaustionAlert
from tests.api.conftest import assert_problem, launch_body
from tests.steps import drive


def test_a_server_from_the_pools_lists_both_addresses_and_an_exhausted_zone_is_a_409(
    owner_api, project, catalog
):
    zone = catalog["fra1-a"]
    AddressPool.objects.create(zone=zone, family=4, cidr="203.0.113.0/30")  # .1 and .2
    AddressPool.objects.create(zone=zone, family=6, cidr="2001:db8:10::/64")
    launched = owner_api.post("instances", launch_body(project, count=2))
    assert launched.status_code == 202
    drive(*Operation.objects.all())
    server = Instance.objects.get(name="web-1")
    assert owner_api.get(f"instances/{server.pk}").json()["addresses"] == ["203.0.113.1", "2001:db8:10::1"]

    body = assert_problem(owner_api.post("instances", launch_body(project, name="more")), 409)
    assert body["detail"] == "No addresses left in fra1-a."
    assert body["errors"] == [{"field": "zone", "message": "No addresses left in fra1-a."}]
    assert Instance.objects.count() == 2
    assert ExhaustionAlert.objects.get().refusals == 1
