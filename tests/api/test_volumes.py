"""Volumes through the API: every change is 202 with the status under way and its operation, which
the client polls; the simulated cloud makes, attaches, grows and deletes the volume for real."""

from __future__ import annotations

import pytest

from portal.compute.models import Operation, SimulatedVolume, Volume
from portal.tenancy.models import Role
from tests.api.conftest import assert_problem
from tests.factories import MembershipFactory
from tests.steps import drive


@pytest.fixture
def server(launch):
    batch = launch(name="db")
    drive(Operation.objects.get(instance__batch=batch))
    return batch.instances.get()


def _finish(answer) -> dict:
    """Drive the answer's operation to its end, as the worker would; the operation as polled."""
    drive(answer["operation"]["id"])
    return answer


def test_a_volumes_life(owner_api, project, server):
    created = owner_api.post(
        "volumes", {"project": project.pk, "name": "data", "zone": "fra1-a", "size_gib": 10}
    )
    assert created.status_code == 202
    body = created.json()
    assert (body["status"], body["device"], body["fault_message"]) == ("creating", "", "")
    operation = owner_api.get(f"operations/{body['operation']['id']}").json()
    assert (operation["action"], operation["state"], operation["volume"], operation["instance"]) == (
        "volume_create",
        "pending",
        body["id"],
        None,
    )
    _finish(body)
    vid = body["id"]
    assert owner_api.get(f"operations/{body['operation']['id']}").json()["state"] == "succeeded"
    assert owner_api.get(f"volumes/{vid}").json()["status"] == "available"

    attach = owner_api.post(f"volumes/{vid}/actions", {"action": "attach", "instance": str(server.pk)})
    assert attach.status_code == 202 and attach.json()["status"] == "attaching"
    _finish(attach.json())
    got = owner_api.get(f"volumes/{vid}").json()
    assert (got["status"], got["attached_to"], got["device"]) == ("in_use", str(server.pk), "/dev/vdb")
    assert "detach it first" in assert_problem(owner_api.delete(f"volumes/{vid}"), 409)["detail"]

    grow = owner_api.post(f"volumes/{vid}/actions", {"action": "extend", "size_gib": 30})
    assert grow.status_code == 202 and grow.json()["status"] == "extending" and grow.json()["size_gib"] == 10
    _finish(grow.json())
    assert owner_api.get(f"volumes/{vid}").json()["size_gib"] == 30

    _finish(owner_api.post(f"volumes/{vid}/actions", {"action": "detach"}).json())
    deleting = owner_api.delete(f"volumes/{vid}")
    assert deleting.status_code == 202 and deleting.json()["status"] == "deleting"
    _finish(deleting.json())
    assert Volume.objects.get().status == "deleted"
    assert not SimulatedVolume.objects.filter(deleted=False).exists()
    assert owner_api.get("volumes").json()["items"] == []


def test_refusals_list_every_reason_and_change_nothing(owner_api, project, catalog, server):
    volume = Volume.objects.create(
        project=project, name="data", zone=catalog["iad1-a"], size_gib=10, status="extending", backend_id="x"
    )
    body = assert_problem(
        owner_api.post(f"volumes/{volume.pk}/actions", {"action": "attach", "instance": str(server.pk)}), 409
    )
    assert [e["message"] for e in body["errors"]] == [
        "data is being extended: wait until that is done.",
        "data is in iad1-a and db in fra1-a: a volume can only be attached to a server in its own zone.",
    ]
    Volume.objects.filter(pk=volume.pk).update(status="available")
    body = assert_problem(
        owner_api.post(f"volumes/{volume.pk}/actions", {"action": "extend", "size_gib": 5}), 422
    )
    assert "choose a larger size (volumes only grow)" in body["detail"]
    body = assert_problem(owner_api.post(f"volumes/{volume.pk}/actions", {"action": "extend"}), 422)
    assert body["errors"] == [{"field": "size_gib", "message": "Give the new size in GiB."}]
    volume.refresh_from_db()
    assert (volume.status, volume.size_gib, volume.attached_to) == ("available", 10, None)
    assert not Operation.objects.filter(volume=volume).exists()


def test_a_zone_without_volumes_is_a_409_that_names_it(owner_api, project, catalog):
    zone = catalog["fra1-a"]
    zone.backend_settings = {"absent": ["volumes"]}
    zone.save()
    body = assert_problem(
        owner_api.post("volumes", {"project": project.pk, "name": "data", "zone": "fra1-a", "size_gib": 10}),
        409,
    )
    assert body["detail"] == "Volumes are not available in fra1-a."
    assert not Volume.objects.exists()


def test_a_viewer_may_read_but_not_change(owner_api, org, project, token_for, catalog):
    volume = Volume.objects.create(
        project=project, name="data", zone=catalog["fra1-a"], size_gib=10, status="available"
    )
    viewer = MembershipFactory(organization=org, role=Role.VIEWER).user
    _, api = token_for(viewer, org)
    assert api.get(f"volumes/{volume.pk}").json()["status"] == "available"
    assert_problem(api.post(f"volumes/{volume.pk}/actions", {"action": "extend", "size_gib": 20}), 403)
    assert_problem(api.delete(f"volumes/{volume.pk}"), 403)
    assert not Operation.objects.exists()


def test_the_schema_documents_the_new_fields(owner_api):
    schema = owner_api.get("openapi.json").json()["components"]["schemas"]
    assert {"status", "device", "fault_message", "operation"} <= set(schema["VolumeOut"]["properties"])
    assert "extend" in schema["VolumeActionIn"]["properties"]["action"]["enum"]
    assert {"volume", "volume_url"} <= set(schema["OperationOut"]["properties"])


def test_the_list_names_each_volumes_latest_operation_in_a_fixed_number_of_queries(owner_api, project):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def listed() -> tuple[int, list]:
        with CaptureQueriesContext(connection) as queries:
            items = owner_api.get("volumes").json()["items"]
        return len(queries), items

    def create(name):
        return owner_api.post(
            "volumes", {"project": project.pk, "name": name, "zone": "fra1-a", "size_gib": 1}
        ).json()

    first = create("a")
    few, items = listed()
    assert [item["operation"]["id"] for item in items] == [first["operation"]["id"]]
    for name in ("b", "c", "d"):
        create(name)
    many, items = listed()
    assert many == few and len(items) == 4 and all(item["operation"] for item in items)
