"""PUT /instances/{id}/reverse-dns: the server's PTR name through the API, with the page's checks."""

from __future__ import annotations

import json

import pytest

from portal.compute.models import Instance, InstanceStatus, Operation
from tests.api.conftest import assert_problem
from tests.steps import drive

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(launch):
    batch = launch(name="web-1")
    drive(Operation.objects.get(instance__batch=batch))
    instance = Instance.objects.get(batch=batch)
    assert instance.status == InstanceStatus.RUNNING
    return instance


def test_the_api_sets_it_and_answers_a_bad_name_with_a_problem(server, owner, org, token_for):
    _, api = token_for(owner, org)

    body = api.put(f"instances/{server.pk}/reverse-dns", {"name": "api.example.com"}).json()
    assert body["reverse_dns"] == "api.example.com"
    assert api.get(f"instances/{server.pk}").json()["reverse_dns"] == "api.example.com"

    problem = assert_problem(api.put(f"instances/{server.pk}/reverse-dns", {"name": "no_dots"}), 422)
    assert "full host name" in json.dumps(problem)
    server.refresh_from_db()
    assert server.reverse_dns == "api.example.com"


def test_viewers_may_not_set_it(server, viewer, org, token_for):
    _, api = token_for(viewer, org)
    assert_problem(api.put(f"instances/{server.pk}/reverse-dns", {"name": "api.example.com"}), 403)
    server.refresh_from_db()
    assert server.reverse_dns == ""
