"""POST /instances with private networks by id: each server joins them once it runs; every bad id
(another project's answered as one that does not exist, another zone's, one being deleted, no id)
a 422 with its own message and no server made; a zone without them says so; the schema says it."""

from __future__ import annotations

import pytest

from portal.compute.models import Instance, Network, NetworkPort, Operation, PortStatus
from portal.compute.services import networks as svc
from tests.api.conftest import assert_problem, launch_body
from tests.factories import ProjectFactory
from tests.steps import drive


def _network(project, zone, name, cidr="10.50.0.0/24", status="available") -> Network:
    return Network.objects.create(
        project=project, name=name, zone=zone, cidr=cidr, status=status, backend_id=f"net-{name}"
    )


@pytest.fixture
def lan(access, catalog, knobs, django_capture_on_commit_callbacks) -> Network:
    with django_capture_on_commit_callbacks():
        made = svc.network_create(access=access, name="lan", zone=catalog["fra1-a"], cidr="10.20.0.0/24")
    drive(made)
    return Network.objects.get(pk=made.network_id)


def test_servers_join_the_networks_named_once_they_run(owner_api, project, lan):
    answer = owner_api.post("instances", launch_body(project, count=2, networks=[str(lan.pk)]))
    assert answer.status_code == 202, answer.content
    assert list(NetworkPort.objects.values_list("status", flat=True)) == [PortStatus.WAITING] * 2
    drive(*(i["operation"]["id"] for i in answer.json()["instances"]))
    drive(*Operation.objects.filter(network=lan, action="network_attach").values_list("pk", flat=True))
    servers = owner_api.get(f"networks/{lan.pk}").json()["servers"]
    assert sorted((s["name"], s["status"]) for s in servers) == [("web-1", "attached"), ("web-2", "attached")]
    assert all(s["address"].startswith("10.20.0.") for s in servers)


def test_another_projects_network_is_refused_as_one_that_does_not_exist(owner_api, project, catalog):
    theirs = _network(ProjectFactory(organization=project.organization), catalog["fra1-a"], "theirs")
    missing = "00000000-0000-0000-0000-000000000000"
    said = []
    for ref in (str(theirs.pk), missing):
        problem = assert_problem(owner_api.post("instances", launch_body(project, networks=[ref])), 422)
        said.append(problem["errors"])
    assert said == [
        [{"field": "networks", "message": f"No private network “{theirs.pk}” in this project."}],
        [{"field": "networks", "message": f"No private network “{missing}” in this project."}],
    ]
    assert not Instance.objects.exists() and not NetworkPort.objects.exists()


def test_every_bad_id_in_one_answer_and_nothing_made(owner_api, project, catalog, lan):
    far = _network(project, catalog["iad1-a"], "far")
    going = _network(project, catalog["fra1-a"], "going", "10.40.0.0/24", status="deleting")
    body = launch_body(project, name="Bad", networks=[str(lan.pk), str(far.pk), str(going.pk), "17"])
    problem = assert_problem(owner_api.post("instances", body), 422)
    # Ids that find nothing first, as with every name the body gives; then the rules.
    assert [e["message"] for e in problem["errors"] if e["field"] == "networks"] == [
        "“17” is not a network id.",
        "Network far is in iad1-a, not fra1-a: a server joins networks of its own zone.",
        "Network going is deleting.",
    ]
    assert {e["field"] for e in problem["errors"]} == {"name", "networks"}
    assert not Instance.objects.exists() and not NetworkPort.objects.exists()


def test_a_zone_without_private_networks_says_so(owner_api, project, catalog, lan):
    zone = catalog["fra1-a"]
    zone.backend_settings = {**zone.backend_settings, "absent": ["private_networks"]}
    zone.save()
    problem = assert_problem(owner_api.post("instances", launch_body(project, networks=[str(lan.pk)])), 409)
    assert problem["detail"] == "Private networks are not available in fra1-a."
    assert not Instance.objects.exists()


def test_the_schema_documents_launch_networks(owner_api):
    schema = owner_api.get("openapi.json").json()["components"]["schemas"]
    field = schema["LaunchIn"]["properties"]["networks"]
    assert field["type"] == "array" and field["items"]["type"] == "string"
    assert "private networks" in field["description"]
