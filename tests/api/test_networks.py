"""Private networks through the API: 202 with the status under way and the operation, which the
client polls; every problem with a range at once; two servers at distinct addresses; delete
refused (409) while servers are on it; a viewer's token may read, not change."""

from __future__ import annotations

import pytest

from portal.compute.models import Network, Operation
from tests.api.conftest import assert_problem
from tests.steps import drive


@pytest.fixture
def servers(launch):
    batch = launch(name="app", count=2)
    drive(*Operation.objects.filter(instance__batch=batch))
    return list(batch.instances.order_by("name"))


def test_a_networks_life(owner_api, project, servers):
    created = owner_api.post(
        "networks", {"project": project.pk, "name": "lan", "zone": "fra1-a", "cidr": "10.20.0.0/24"}
    )
    assert created.status_code == 202, created.content
    body = created.json()
    assert (body["status"], body["cidr"], body["servers"]) == ("creating", "10.20.0.0/24", [])
    operation = owner_api.get(f"operations/{body['operation']['id']}").json()
    assert (operation["action"], operation["network"], operation["instance"]) == (
        "network_create",
        body["id"],
        None,
    )
    drive(body["operation"]["id"])
    nid = body["id"]
    assert owner_api.get(f"networks/{nid}").json()["status"] == "available"
    for server in servers:
        joined = owner_api.post(f"networks/{nid}/actions", {"action": "attach", "instance": str(server.pk)})
        assert joined.status_code == 202, joined.content
        assert [s["status"] for s in joined.json()["servers"] if s["instance"] == str(server.pk)] == [
            "attaching"
        ]
        drive(joined.json()["operation"]["id"])
    got = owner_api.get(f"networks/{nid}").json()
    addresses = {s["name"]: s["address"] for s in got["servers"]}
    assert addresses == {"app-1": "10.20.0.2", "app-2": "10.20.0.3"}
    assert [n["id"] for n in owner_api.get("networks").json()["items"]] == [nid]
    refused = assert_problem(owner_api.delete(f"networks/{nid}"), 409)
    assert refused["detail"] == "lan still has servers on it (app-1, app-2): detach them first."
    for server in servers:
        drive(
            owner_api.post(
                f"networks/{nid}/actions", {"action": "detach", "instance": str(server.pk)}
            ).json()["operation"]["id"]
        )
    deleting = owner_api.delete(f"networks/{nid}")
    assert deleting.status_code == 202 and deleting.json()["status"] == "deleting"
    drive(deleting.json()["operation"]["id"])
    assert owner_api.get("networks").json()["items"] == []
    assert Network.objects.get().status == "deleted"


def test_bad_ranges_are_all_said_and_overlap_refused(owner_api, project, catalog):
    answer = owner_api.post(
        "networks", {"project": project.pk, "name": "Bad!", "zone": "fra1-a", "cidr": "8.8.8.0/30"}
    )
    problem = assert_problem(answer, 422)
    said = {(e["field"], e["message"].split(":")[0]) for e in problem["errors"]}
    assert {f for f, _ in said} == {"name", "cidr"} and len(problem["errors"]) == 3
    for cidr in ("10.0.0.0/0", "10.0.0.0/33"):
        assert_problem(
            owner_api.post("networks", {"project": project.pk, "name": "x", "zone": "fra1-a", "cidr": cidr}),
            422,
        )
    Network.objects.create(
        project=project, name="lan", zone=catalog["fra1-a"], cidr="10.20.0.0/24", status="available"
    )
    clash = owner_api.post(
        "networks", {"project": project.pk, "name": "lan2", "zone": "fra1-a", "cidr": "10.20.0.0/16"}
    )
    assert "overlaps lan (10.20.0.0/24)" in assert_problem(clash, 409)["detail"]
    assert Network.objects.count() == 1
