"""What a careless or hostile client may send beyond a wrong field: bodies that are not JSON, too
large or sent as something else, NULs in the URL, huge numbers and headers. Each is a clear 4xx
problem, never a 5xx, and launches nothing."""

from __future__ import annotations

import json

import pytest

from portal.api.api import api
from portal.compute.models import Instance
from tests.api.conftest import assert_problem, launch_body
from tests.api.world import build_world


def _launch_json(project, **overrides) -> str:
    return json.dumps(launch_body(project, **overrides))


def _post_raw(owner_api, data, content_type="application/json", path="/api/v1/instances", headers=None):
    return owner_api.client.post(
        path, data, content_type=content_type, headers=owner_api.headers | (headers or {})
    )


BODIES = {
    "not JSON": (lambda p: "{", 400, "not valid JSON"),
    "trailing garbage": (lambda p: _launch_json(p) + "x", 400, "not valid JSON"),
    "not UTF-8": (lambda p: b'{"name": "\xff"}', 400, "not valid JSON"),
    "an array": (lambda p: json.dumps([launch_body(p)]), 422, "see errors"),
    "a string": (lambda p: '"web"', 422, "see errors"),
    "null": (lambda p: "null", 422, "see errors"),
    "nested a million deep": (lambda p: "[" * 1_000_000, 400, "nests too deeply"),
    "a key twice": (
        lambda p: _launch_json(p, count=1)[:-1] + ', "count": 20}',
        400,
        "“count” appears twice",
    ),
    "NaN": (lambda p: _launch_json(p).replace('"count": 1', '"count": NaN'), 400, "NaN is not a JSON number"),
    "Infinity": (
        lambda p: _launch_json(p).replace('"count": 1', '"count": Infinity'),
        400,
        "not a JSON number",
    ),
    "a 5,000-digit integer": (
        lambda p: _launch_json(p).replace('"count": 1', '"count": 1' + "0" * 5000),
        400,
        "not valid JSON",
    ),
    "count 10**40": (lambda p: _launch_json(p, count=10**40), 422, ""),
    "root_disk_gib 10**40": (lambda p: _launch_json(p, root_disk_gib=10**40), 422, ""),
    "firewall 10**40": (lambda p: _launch_json(p, firewall=10**40), 422, ""),
    "an SSH key id 10**40": (lambda p: _launch_json(p, ssh_keys=[10**40]), 422, ""),
    "a NUL in a string": (lambda p: _launch_json(p, zone="fra1-a\x00"), 422, "see errors"),
}


@pytest.mark.parametrize(("make", "status", "says"), BODIES.values(), ids=BODIES.keys())
def test_a_body_that_is_not_a_launch_is_a_clear_4xx(make, status, says, owner_api, project):
    body = assert_problem(_post_raw(owner_api, make(project)), status)
    assert says in body["detail"]
    assert not Instance.objects.exists()


@pytest.mark.parametrize(
    "path", ["volumes", "firewalls/{firewall}/rules"], ids=["volume size", "firewall port"]
)
def test_huge_integers_elsewhere_are_422_too(path, owner_api, project):
    world = build_world(project)
    bodies = {
        "volumes": {"project": project.pk, "name": "v", "zone": "fra1-a", "size_gib": 10**40},
        "firewalls/{firewall}/rules": {"port_from": 10**40, "port_to": 10**40, "source": "0.0.0.0/0"},
    }
    assert_problem(owner_api.post(path.format(**world), bodies[path]), 422)


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("text/plain", "json"),
        ("", "json"),
        ("application/x-www-form-urlencoded", "name=web&count=1"),
        ("application/xml", "<launch/>"),
        ("application/jsonx", "json"),
    ],
    ids=repr,
)
def test_a_body_not_sent_as_application_json_is_415(content_type, data, owner_api, project):
    sent = _launch_json(project) if data == "json" else data
    body = assert_problem(_post_raw(owner_api, sent, content_type=content_type), 415)
    assert "send Content-Type: application/json" in body["detail"]
    assert not Instance.objects.exists()


def test_a_multipart_form_is_415(owner_api, project):
    response = owner_api.client.post("/api/v1/instances", launch_body(project), headers=owner_api.headers)
    assert_problem(response, 415)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_application_json_with_or_without_a_charset_is_taken(content_type, owner_api, project):
    response = _post_raw(owner_api, _launch_json(project), content_type=content_type)
    assert response.status_code == 202, response.content


def test_a_415_on_an_update_and_a_budget_too(owner_api, project):
    world = build_world(project)
    patch = owner_api.client.patch(
        f"/api/v1/instances/{world['instance']}",
        '{"termination_protection": true}',
        content_type="text/plain",
        headers=owner_api.headers,
    )
    assert_problem(patch, 415)
    put = owner_api.client.put(
        f"/api/v1/projects/{project.pk}/budget", '{"amount": "5"}', content_type="", headers=owner_api.headers
    )
    assert_problem(put, 415)


def test_a_body_over_the_limit_is_413_naming_it(owner_api, project, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    big = _launch_json(project, user_data="#" * 5000)
    body = assert_problem(_post_raw(owner_api, big), 413)
    assert "4,096 bytes" in body["detail"]
    assert not Instance.objects.exists()
    # the same on any endpoint that takes a body, and whatever its content type says
    assert_problem(_post_raw(owner_api, big, content_type="text/plain", path="/api/v1/ssh-keys"), 413)
    assert _post_raw(owner_api, _launch_json(project)).status_code == 202  # under it: fine


def test_a_body_under_the_default_limit_is_taken_and_one_over_it_is_413(owner_api, project, settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2_621_440  # Django's default: what docs/api.md says
    body = assert_problem(_post_raw(owner_api, _launch_json(project, user_data="#" * 2_700_000)), 413)
    assert "2,621,440 bytes (2.5 MiB)" in body["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "instances?name=%00",
        "instances?zone=fra1%00",
        "instances?project=%00",
        "ssh-keys?project=web%00shop",
        "catalog/zones?project=%00",
        "projects/%00",
        "projects/web%00shop/usage",
        "projects/%00/budget",
        "instances?x%00=1",
    ],
)
def test_a_nul_in_the_url_is_400(url, owner_api, project):
    # PostgreSQL can't compare text with a NUL in it: these were 500s there.
    body = assert_problem(owner_api.client.get(f"/api/v1/{url}", headers=owner_api.headers), 400)
    assert "NUL" in body["detail"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=true", "limit"),
        ("limit=" + "9" * 40, "limit"),
        ("limit=0", "limit"),
        ("status=bogus", "status"),
        ("name=" + "a" * 64, "name"),
    ],
)
def test_a_bad_query_parameter_is_422_naming_it(query, field, owner_api, project):
    response = owner_api.client.get(f"/api/v1/instances?{query}", headers=owner_api.headers)
    assert [e["field"] for e in assert_problem(response, 422)["errors"]] == [field]


def test_too_many_query_parameters_is_400(owner_api, project):
    query = "&".join(f"p{n}=1" for n in range(1500))
    assert_problem(owner_api.client.get(f"/api/v1/instances?{query}", headers=owner_api.headers), 400)


TEN_MB = 10 * 2**20


def test_ten_megabyte_headers_the_api_reads_are_refused(owner_api, project):
    # In production gunicorn refuses any header over 8 KiB before the portal sees it; these are
    # what the portal itself answers.
    token = owner_api.client.get("/api/v1/projects", headers={"Authorization": "Bearer npt_" + "a" * TEN_MB})
    assert_problem(token, 401)
    key = _post_raw(owner_api, _launch_json(project), headers={"Idempotency-Key": "k" * TEN_MB})
    assert "Idempotency-Key" in assert_problem(key, 400)["detail"]
    assert not Instance.objects.exists()
    other = owner_api.client.get("/api/v1/projects", headers=owner_api.headers | {"X-Padding": "a" * TEN_MB})
    assert other.status_code == 200  # a header the API does not read changes nothing


def test_the_schema_documents_the_refusals_of_a_body():
    for path, operations in api.get_openapi_schema()["paths"].items():
        for method, operation in operations.items():
            responses = {int(status) for status in operation["responses"]}
            assert 400 in responses, (method, path)
            if "requestBody" in operation:
                assert {413, 415, 422} <= responses, (method, path)
