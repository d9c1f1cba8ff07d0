"""Schemathesis against the live OpenAPI schema, in process (WSGI): for every operation, generated
requests — valid and invalid — with a real token of a seeded organization must never get a 5xx,
and every answer must be one the schema documents (status code, content type, body).

Half the examples of an operation with path parameters aim at real objects of the seeded project
(so updates, actions and deletes reach the code behind the 404), the other half at generated ids.
Bounded and deterministic: a fixed seed, a few examples per operation."""

from __future__ import annotations

import itertools

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from portal.api.models import TokenScope
from portal.wsgi import application
from tests.api.conftest import make_token
from tests.api.world import KEY_A, build_world
from tests.factories import InstanceFactory, ProjectFactory


def _schema(max_examples: int, coverage: bool):
    config = SchemathesisConfig.from_dict(
        {
            "seed": 20261125,
            "generation": {"max-examples": max_examples, "deterministic": True, "database": "none"},
            "phases": {"coverage": {"enabled": coverage}, "stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application, config=config)


# The read-write run gets the coverage phase too (boundary values, missing fields, wrong types,
# no token, other methods); the read-only run, mostly 403s, a smaller random sample.
read_write_schema = _schema(max_examples=12, coverage=True)
read_only_schema = _schema(max_examples=8, coverage=False)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Real names for the body fields a generated string would never hit (a launch then succeeds when
# the rest of the example is valid too).
BODY_VALUES = {
    "zone": "fra1-a",
    "flavor": "s-1vcpu-2gb",
    "image": "Debian 13",
    "count": 1,
    "ssh_keys": [],
    "root_disk_gib": None,
    "public_key": KEY_A,
}
PATH_OBJECTS = {
    "project_id": "project",
    "instance_id": "instance",
    "operation_id": "operation",
    "key_id": "key",
    "firewall_id": "firewall",
    "rule_id": "rule",
    "volume_id": "volume",
}


@pytest.fixture
def in_process():
    """Requests served in this thread, inside the test's transaction: like django.test.Client, keep
    the end of a request from closing the test's database connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(in_process, org, project, owner, catalog, knobs, settings):
    """A project with a few servers, keys, firewalls and volumes, and a second, empty project."""
    # Hundreds of requests a test from one token: the limit has its own tests.
    settings.PORTAL_API_RATE_LIMIT_PER_MINUTE = 100_000
    world = build_world(project)
    for name in ("db-1", "db-2"):
        InstanceFactory(project=project, name=name)
    ProjectFactory(organization=org, name="Staging", slug="staging")
    return world


def _token(owner, org, scope: TokenScope) -> dict:
    _, secret = make_token(owner, org, scope=scope, billing=True)
    return {"Authorization": f"Bearer {secret}"}


def _aim(case, world: dict, counter) -> None:
    """Every other example: real ids in the path and real names in the body, the rest generated."""
    if next(counter) % 2 == 0:
        return
    for name in case.path_parameters or {}:
        if name in PATH_OBJECTS:
            case.path_parameters[name] = world[PATH_OBJECTS[name]]
    if isinstance(case.body, dict):
        real = BODY_VALUES | {
            "project": world["project"],
            "instance": str(world["instance"]),
            "firewall": world["firewall"],
        }
        case.body.update({name: value for name, value in real.items() if name in case.body})
        if "count" in case.body:  # a launch: a valid server name too
            case.body["name"] = "fuzz"


@pytest.fixture
def counter():
    return itertools.count()


# The seeded world is shared by an operation's examples on purpose: deletes and launches change it,
# as a real client's calls would.
SHARED_WORLD = hypothesis.settings(suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])


@read_write_schema.parametrize()
@SHARED_WORLD
def test_read_write_token(case, seeded, owner, org, counter):
    _aim(case, seeded, counter)
    case.call_and_validate(headers=_token(owner, org, TokenScope.READ_WRITE), checks=CHECKS)


@read_only_schema.parametrize()
@SHARED_WORLD
def test_read_only_token(case, seeded, owner, org, counter):
    _aim(case, seeded, counter)
    case.call_and_validate(headers=_token(owner, org, TokenScope.READ), checks=CHECKS)
