"""problem+json everywhere, and the per-token rate limit."""

from __future__ import annotations

import pytest
from django.core.exceptions import BadRequest, PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError
from django.http import Http404
from ninja.errors import AuthenticationError, HttpError, Throttled

from portal.api.api import api
from portal.api.errors import ApiProblem, status_for
from portal.api.models import TokenScope
from portal.compute.quota import QuotaExceeded
from portal.compute.services import ComputeRefused
from portal.residency.placement import Decision, PlacementDenied
from tests.api.conftest import ApiClient, assert_problem, make_token


def test_validation_errors_list_the_fields(owner_api, project):
    body = assert_problem(owner_api.post("instances", {"project": project.pk, "count": "many"}), 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"name", "zone", "flavor", "image", "count"} <= fields
    assert all(e["message"] for e in body["errors"])


def test_malformed_json_is_400(owner_api):
    response = owner_api.client.post(
        "/api/v1/instances", "{not json", content_type="application/json", headers=owner_api.headers
    )
    assert_problem(response, 400)


def test_unknown_paths_are_problems_too(owner_api):
    assert_problem(owner_api.get("no/such/thing"), 404)


def test_a_crash_is_a_generic_500_without_a_traceback(owner_api, project, monkeypatch, caplog):
    from portal.api.routers import projects

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(projects, "project_out", explode)
    body = assert_problem(owner_api.get("projects"), 500)
    assert "secret" not in body["detail"] and "Traceback" not in str(body)
    assert "secret internals" in caplog.text  # logged for us


@pytest.mark.parametrize("scope", [TokenScope.READ, TokenScope.READ_WRITE])
def test_rate_limit_is_per_token_with_retry_after(scope, org, owner, settings):
    settings.PORTAL_API_RATE_LIMIT_PER_MINUTE = 3
    _, first = make_token(owner, org, scope=scope, name="one")
    _, second = make_token(owner, org, scope=scope, name="two")
    api = ApiClient(first)
    assert [api.get("projects").status_code for _ in range(3)] == [200, 200, 200]
    limited = api.get("projects")
    body = assert_problem(limited, 429)
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert "3 a minute" in body["detail"]
    assert ApiClient(second).get("projects").status_code == 200  # another token has its own budget


def test_a_wrong_method_is_a_405_problem(owner_api):
    response = owner_api.put("instances", {})
    body = assert_problem(response, 405)
    assert "GET" in response["Allow"] and "POST" in body["detail"]


def _parse_failure(cause: Exception) -> HttpError:
    # What ninja raises when the body parser fails: its own 400, caused by the parser's problem.
    error = HttpError(400, "Cannot parse request body")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "error",
    [
        ApiProblem(409, "taken"),
        _parse_failure(ApiProblem(415, "JSON only")),
        _parse_failure(ValueError("odd")),
        RequestDataTooBig("big"),
        SuspiciousOperation("odd"),
        BadRequest("bad"),
        ApiProblem(422, "bad"),
        HttpError(405, "no"),
        AuthenticationError(),
        Throttled(wait=3),
        ComputeRefused("bad value", "name"),
        ComputeRefused("in use", status=409),
        ComputeRefused("forbidden", status=403),
        Http404("No such server."),
        PermissionDenied("read only"),
        QuotaExceeded("over"),
        PlacementDenied(Decision(allowed=False, reasons=("EU only",))),
        RuntimeError("bug"),
        DatabaseError("gone"),
    ],
    ids=repr,
)
def test_status_for_names_the_status_each_error_is_answered_with(error, rf, caplog):
    # The idempotency claim keeps the key's transaction for a 4xx and rolls it back for a 5xx.
    assert status_for(error) == api.on_exception(rf.post("/api/v1/instances"), error).status_code
