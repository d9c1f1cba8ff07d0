"""Request bodies are taken as sent or refused: an unknown field, or a value of the wrong JSON type,
is a 422 naming the field, on every operation that takes a body; all the errors come at once; a
refused request changes nothing.

The operations and their fields come from the OpenAPI document, so an endpoint added later is
covered without a line here."""

from __future__ import annotations

import json

import pytest

from portal.api.api import api
from portal.api.models import IdempotencyRecord
from portal.audit.models import AuditAction, AuditEvent
from portal.compute.models import Instance, LaunchBatch, Operation
from tests.api.conftest import assert_problem, launch_body
from tests.api.world import build_world

SCHEMA = api.get_openapi_schema()
PATH_OBJECTS = {
    "instance_id": "instance",
    "firewall_id": "firewall",
    "volume_id": "volume",
    "project_id": "project",
    "snapshot_id": "snapshot",
    "network_id": "network",
}


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        node = SCHEMA["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _body_operations() -> list[tuple[str, str, dict]]:
    found = []
    for path, operations in SCHEMA["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                found.append((method, path.removeprefix("/api/v1/"), _resolve(body)))
    return found


BODY_OPERATIONS = _body_operations()
IDS = [f"{method.upper()} {path}" for method, path, _ in BODY_OPERATIONS]


def _objects(node: dict):
    """Every object schema in `node`, nested ones too."""
    node = _resolve(node)
    if node.get("type") == "object" or "properties" in node:
        yield node
    for child in node.get("properties", {}).values():
        yield from _objects(child)
    for key in ("anyOf", "oneOf", "allOf"):
        for child in node.get(key, []):
            yield from _objects(child)
    if isinstance(node.get("items"), dict):
        yield from _objects(node["items"])


def _types(node: dict) -> set[str]:
    node = _resolve(node)
    types = {node["type"]} if "type" in node else set()
    for key in ("anyOf", "oneOf"):
        for child in node.get(key, []):
            types |= _types(child)
    return types


# A value of each JSON type, and the JSON Schema types it is one of: a field whose schema names
# none of them must refuse it.
SAMPLES = {
    "true": (True, {"boolean"}),
    '"5"': ("5", {"string"}),
    "1.0": (1.0, {"number"}),
    "1.5": (1.5, {"number"}),
    "1": (1, {"integer", "number"}),
    "[]": ([], {"array"}),
    "{}": ({}, {"object"}),
}


def _wrong_bodies():
    """Per operation and sample: a body with every field that must refuse the sample set to it."""
    for (method, path, body), op_id in zip(BODY_OPERATIONS, IDS, strict=True):
        for label, (value, kinds) in SAMPLES.items():
            wrong = {field: value for field, node in body["properties"].items() if not kinds & _types(node)}
            if wrong:
                yield pytest.param(method, path, wrong, id=f"{op_id} {label}")


def _url(path: str, world: dict) -> str:
    for name, key in PATH_OBJECTS.items():
        path = path.replace("{" + name + "}", str(world[key]))
    assert "{" not in path, f"add the path parameter of {path} to PATH_OBJECTS"
    return path


@pytest.fixture
def world(project):
    return build_world(project)


def test_every_operation_that_takes_a_body_is_checked_here():
    assert len(BODY_OPERATIONS) >= 9  # the document was read, not found empty
    assert {"post instances", "put projects/{project_id}/budget"} <= {
        f"{m} {p}" for m, p, _ in BODY_OPERATIONS
    }


@pytest.mark.parametrize(("method", "path", "body"), BODY_OPERATIONS, ids=IDS)
def test_every_request_body_schema_forbids_unknown_fields(method, path, body):
    # What the schema promises (and schemathesis holds the API to): additionalProperties false.
    for node in _objects(body):
        assert node.get("additionalProperties") is False, node.get("title")


@pytest.mark.parametrize(("method", "path", "body"), BODY_OPERATIONS, ids=IDS)
def test_an_unknown_field_is_a_422_naming_it_on_every_operation(method, path, body, owner_api, world):
    response = getattr(owner_api, method)(_url(path, world), {"bogus": 1, "admin": True})
    problem = assert_problem(response, 422)
    unknown = {e["field"]: e["message"] for e in problem["errors"] if "Unknown field" in e["message"]}
    assert set(unknown) == {"bogus", "admin"}


@pytest.mark.parametrize(("method", "path", "wrong"), list(_wrong_bodies()))
def test_a_value_of_the_wrong_json_type_is_a_422_naming_the_field(method, path, wrong, owner_api, world):
    response = getattr(owner_api, method)(_url(path, world), wrong)
    problem = assert_problem(response, 422)
    assert set(wrong) <= {e["field"] for e in problem["errors"]}, problem["errors"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"count": True}, "count"),
        ({"count": "5"}, "count"),
        ({"count": 1.0}, "count"),
        ({"count": 2e0}, "count"),
        ({"root_disk_gib": "50"}, "root_disk_gib"),
        ({"termination_protection": 1}, "termination_protection"),
        ({"termination_protection": "false"}, "termination_protection"),
        ({"name": 7}, "name"),
        ({"project": True}, "project"),
        ({"image": 1.5}, "image"),
        ({"ssh_keys": [True]}, "ssh_keys.0"),
        ({"ssh_keys": "laptop"}, "ssh_keys"),
        ({"firewall": "1"}, "firewall"),
        ({"bogus": 1}, "bogus"),
        ({"admin": True}, "admin"),
    ],
    ids=repr,
)
def test_a_launch_with_a_wrong_field_launches_nothing(overrides, field, owner_api, project):
    body = assert_problem(owner_api.post("instances", launch_body(project) | overrides), 422)
    assert [e["field"] for e in body["errors"]] == [field]
    assert not Instance.objects.exists()


def test_ids_are_integers_and_names_strings(owner_api, project):
    image_id = owner_api.get("catalog/images").json()["items"][0]["id"]
    by_id = owner_api.post("instances", launch_body(project) | {"project": project.pk, "image": image_id})
    assert by_id.status_code == 202, by_id.content
    by_name = owner_api.post(
        "instances", launch_body(project, name="db") | {"project": project.slug, "image": "Debian 13"}
    )
    assert by_name.status_code == 202, by_name.content


def test_uuids_and_amounts_are_strings_in_json(owner_api, project, world):
    assert owner_api.put(f"projects/{project.pk}/budget", {"amount": "500.00"}).status_code == 200
    assert owner_api.put(f"projects/{project.pk}/budget", {"amount": 250}).status_code == 200
    attached = owner_api.post(
        f"volumes/{world['volume']}/actions", {"action": "attach", "instance": str(world["instance"])}
    )
    assert attached.status_code == 202, attached.content
    refused = owner_api.put(f"projects/{project.pk}/budget", {"amount": True})
    assert [e["field"] for e in assert_problem(refused, 422)["errors"]] == ["amount"]


def test_every_error_of_a_request_comes_at_once_with_its_field(owner_api, project, world):
    response = owner_api.post(
        "instances",
        {
            "project": project.pk,
            "count": True,
            "root_disk_gib": "20",
            "zone": "fra1-a\x00",
            "flavor": 2,
            "image": "Debian 13",
            "ssh_keys": ["laptop", False],
            "bogus": 1,
        },
    )
    errors = {e["field"]: e["message"] for e in assert_problem(response, 422)["errors"]}
    assert set(errors) == {"name", "count", "root_disk_gib", "zone", "flavor", "ssh_keys.1", "bogus"}
    assert all(message.endswith(".") and len(message) > 10 for message in errors.values()), errors
    assert "NUL" in errors["zone"] and "integer" in errors["count"]
    # the path, query and body of one request are checked together too
    action = owner_api.post("instances/not-a-uuid/actions", {"action": "fly", "flavor": 1, "x": 0})
    fields = {e["field"] for e in assert_problem(action, 422)["errors"]}
    assert fields == {"instance_id", "action", "flavor", "x"}


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("name", "web\x00"),
        ("zone", "fra1-a\x00"),
        ("image", "Debian\x0013"),
        ("user_data", "#!/bin/sh\x00"),
        ("user_data", "\ud800"),
        ("name", "web\udfff"),
    ],
    ids=repr,
)
def test_text_that_cannot_be_stored_is_a_422(field, text, owner_api, project):
    # PostgreSQL refuses NUL in text and UTF-8 has no lone surrogates: a 500 on the write before.
    response = owner_api.post("instances", launch_body(project, **{field: text}))
    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == [field]
    assert not Instance.objects.exists()


def test_text_in_lists_and_other_bodies_is_checked_too(owner_api, project, world):
    launch = owner_api.post("instances", launch_body(project, ssh_keys=["laptop\x00"]))
    assert [e["field"] for e in assert_problem(launch, 422)["errors"]] == ["ssh_keys"]
    rule = owner_api.post(
        f"firewalls/{world['firewall']}/rules",
        {"port_from": 80, "source": "0.0.0.0/0", "description": "a\x00"},
    )
    assert [e["field"] for e in assert_problem(rule, 422)["errors"]] == ["description"]


REFUSED_LAUNCHES = {
    "unknown field": lambda project: {"json": launch_body(project, admin=True)},
    "bool for an int": lambda project: {"json": launch_body(project, count=True)},
    "string for an int": lambda project: {"json": launch_body(project, count="5")},
    "NUL in the user data": lambda project: {"json": launch_body(project, user_data="\x00")},
    "text/plain": lambda project: {"raw": launch_body(project), "content_type": "text/plain"},
    "no content type": lambda project: {"raw": launch_body(project), "content_type": ""},
    "not JSON": lambda project: {"raw": "{", "content_type": "application/json"},
    "an array": lambda project: {"json": [launch_body(project)]},
}


@pytest.mark.parametrize("refusal", REFUSED_LAUNCHES.values(), ids=REFUSED_LAUNCHES.keys())
def test_a_refused_launch_changes_nothing_and_its_key_can_be_used_again(refusal, owner_api, project):
    headers = {"Idempotency-Key": "launch-1"}
    request = refusal(project)
    if "json" in request:
        response = owner_api.post("instances", request["json"], headers=headers)
    else:
        raw = request["raw"] if isinstance(request["raw"], str) else json.dumps(request["raw"])
        response = owner_api.client.post(
            "/api/v1/instances",
            raw,
            content_type=request["content_type"],
            headers=owner_api.headers | headers,
        )
    assert 400 <= response.status_code < 500, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert not Instance.objects.exists() and not LaunchBatch.objects.exists()
    assert not Operation.objects.exists() and not IdempotencyRecord.objects.exists()
    assert not AuditEvent.objects.exclude(action=AuditAction.API_TOKEN_USED).exists()
    # the key was not kept: the corrected request with it launches (and is not a replay)
    launched = owner_api.post("instances", launch_body(project), headers=headers)
    assert launched.status_code == 202 and not launched.has_header("Idempotent-Replayed")
    assert Instance.objects.count() == 1
