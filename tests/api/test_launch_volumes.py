"""POST /instances with volumes: new ones (name, size) for each server and existing ones by id,
the wizard's rules and words, every problem in one answer, nothing made when refused, the
Idempotency-Key replaying the launch with its volumes, and the schema saying all of it."""

from __future__ import annotations

import pytest

from portal.compute.models import Instance, Operation, Volume
from tests.api.conftest import assert_problem, launch_body
from tests.factories import InstanceFactory, ProjectFactory
from tests.steps import drive


@pytest.fixture
def spare(project, catalog):
    return Volume.objects.create(
        project=project, name="spare", zone=catalog["fra1-a"], size_gib=5, status="available", backend_id="v1"
    )


def test_a_launch_with_volumes_answers_them_and_attaches_them(owner_api, project, catalog):
    body = launch_body(project, count=2, new_volumes=[{"name": "data", "size_gib": 10}])
    answer = owner_api.post("instances", body)
    assert answer.status_code == 202, answer.content
    launched = answer.json()["instances"]
    assert [[(v["name"], v["size_gib"], v["status"]) for v in i["volumes"]] for i in launched] == [
        [("web-1-data", 10, "creating")],
        [("web-2-data", 10, "creating")],
    ]
    creation = launched[0]["volumes"][0]["operation"]["id"]
    assert owner_api.get(f"operations/{creation}").json()["action"] == "volume_create"
    drive(*Operation.objects.active().values_list("pk", flat=True))
    volume = owner_api.get(f"volumes/{launched[0]['volumes'][0]['id']}").json()
    assert (volume["status"], volume["attached_to"], volume["device"]) == (
        "in_use",
        launched[0]["id"],
        "/dev/vdb",
    )


def test_an_existing_volume_by_id(owner_api, project, spare):
    answer = owner_api.post("instances", launch_body(project, existing_volumes=[str(spare.pk)]))
    assert answer.status_code == 202, answer.content
    [volume] = answer.json()["instances"][0]["volumes"]
    assert (volume["id"], volume["operation"]) == (str(spare.pk), None)
    spare.refresh_from_db()
    assert spare.pending_server == Instance.objects.get()


def test_every_problem_in_one_answer_and_nothing_made(owner_api, project, catalog, spare):
    far = Volume.objects.create(
        project=project, name="far", zone=catalog["iad1-a"], size_gib=5, status="available"
    )
    body = launch_body(
        project,
        count=2,
        new_volumes=[{"name": "data", "size_gib": 0}, {"name": "big", "size_gib": 16385}],
        existing_volumes=[str(spare.pk), str(far.pk)],
    )
    problem = assert_problem(owner_api.post("instances", body), 422)
    assert [(e["field"], e["message"]) for e in problem["errors"]] == [
        ("new_volumes", "New volume 1: a volume is 1 to 16384 GiB."),
        ("new_volumes", "New volume 2: a volume is 1 to 16384 GiB."),
        (
            "existing_volumes",
            "Existing volumes can only be attached to a single server: launch one, or add new volumes "
            "(each server gets its own set).",
        ),
        (
            "existing_volumes",
            "Volume far is in iad1-a, not fra1-a: a server can only use volumes of its own zone.",
        ),
    ]
    assert not Instance.objects.exists() and Volume.objects.count() == 2


def test_another_projects_volume_is_answered_as_one_that_does_not_exist(owner_api, project, catalog):
    theirs = Volume.objects.create(
        project=ProjectFactory(organization=project.organization),
        name="theirs",
        zone=catalog["fra1-a"],
        size_gib=5,
        status="available",
    )
    answers = [
        assert_problem(owner_api.post("instances", launch_body(project, existing_volumes=[ref])), 404)
        for ref in (str(theirs.pk), "0b8a4c9e-0000-4000-8000-000000000000")
    ]
    detail = [
        a["detail"].replace(str(theirs.pk), "ID").replace("0b8a4c9e-0000-4000-8000-000000000000", "ID")
        for a in answers
    ]
    assert detail[0] == detail[1] == "No volume “ID” in this project."
    assert "theirs" not in str(answers) and not Instance.objects.exists()


def test_an_attached_volume_and_a_zone_without_volumes(owner_api, project, catalog, spare):
    spare.status = "in_use"
    spare.attached_to = InstanceFactory(project=project, name="db", zone=catalog["fra1-a"], status="running")
    spare.save()
    problem = assert_problem(
        owner_api.post("instances", launch_body(project, existing_volumes=[str(spare.pk)])), 409
    )
    assert problem["detail"] == "Volume spare is attached to db: detach it first."
    zone = catalog["fra1-a"]
    zone.backend_settings = {**zone.backend_settings, "absent": ["volumes"]}
    zone.save()
    body = launch_body(project, new_volumes=[{"name": "data", "size_gib": 10}])
    problem = assert_problem(owner_api.post("instances", body), 409)
    assert (
        problem["detail"]
        == "Volumes are not available in fra1-a. Launch without volumes, or choose another zone."
    )
    assert Instance.objects.count() == 1 and Volume.objects.count() == 1


def test_over_the_volume_quota(owner_api, project):
    project.quota_volume_gib = 10
    project.save()
    body = launch_body(project, count=2, new_volumes=[{"name": "data", "size_gib": 10}])
    problem = assert_problem(owner_api.post("instances", body), 403)
    assert "volume storage: needs 20 GiB, 10 GiB left of 10 GiB" in problem["detail"]
    assert not Instance.objects.exists() and not Volume.objects.exists()


def test_a_retry_with_the_same_key_makes_the_volumes_once(owner_api, project):
    headers = {"Idempotency-Key": "launch-vols-1"}
    body = launch_body(project, new_volumes=[{"name": "data", "size_gib": 10}])
    first = owner_api.post("instances", body, headers=headers)
    again = owner_api.post("instances", body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"
    assert Volume.objects.count() == 1 and Instance.objects.count() == 1


def test_the_schema_documents_launch_volumes(owner_api):
    schema = owner_api.get("openapi.json").json()["components"]["schemas"]
    assert {"new_volumes", "existing_volumes"} <= set(schema["LaunchIn"]["properties"])
    assert schema["LaunchVolumeIn"]["properties"]["size_gib"]["maximum"] == 16384
    assert "volumes" in schema["LaunchedInstance"]["properties"]
    assert {"id", "name", "size_gib", "status", "url", "operation"} <= set(
        schema["LaunchedVolume"]["properties"]
    )
