"""Rescue mode over the API: the `rescue` and `unrescue` actions, with a reboot's roles, the zone's
capability (409 naming the zone), the state machine's 409, idempotency and audit."""

from __future__ import annotations

from portal.audit.models import AuditAction, AuditEvent
from portal.compute.models import Instance, Operation
from tests.api.conftest import assert_problem
from tests.factories import InstanceFactory


def _server(project, status="running"):
    return InstanceFactory(project=project, name="db-1", status=status, backend_id="sim-db-1")


def test_rescue_is_accepted_and_the_server_shows_it(owner_api, project):
    server = _server(project)
    answer = owner_api.post(f"instances/{server.pk}/actions", {"action": "rescue"})
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["instance"]["status"] == "rescuing"
    assert Operation.objects.get(pk=body["operation"]["id"]).action == "rescue"
    assert AuditEvent.objects.get(action=AuditAction.INSTANCE_ACTION).changes == {"action": [None, "Rescue"]}


def test_unrescue_from_rescue_and_not_from_running(owner_api, project):
    server = _server(project)
    body = assert_problem(owner_api.post(f"instances/{server.pk}/actions", {"action": "unrescue"}), 409)
    assert "works only when it is in rescue mode" in body["detail"]
    Instance.objects.filter(pk=server.pk).update(status="rescue")
    answer = owner_api.post(f"instances/{server.pk}/actions", {"action": "unrescue"})
    assert answer.status_code == 202 and answer.json()["instance"]["status"] == "unrescuing"


def test_a_zone_without_rescue_is_a_conflict_naming_it(owner_api, project):
    server = _server(project)
    server.zone.backend_settings = {"absent": ["rescue"]}
    server.zone.save()
    body = assert_problem(owner_api.post(f"instances/{server.pk}/actions", {"action": "rescue"}), 409)
    assert body["detail"] == f"Rescue mode is not available in {server.zone.code}."
    assert not Operation.objects.exists()


def test_a_retry_with_the_same_key_rescues_once(owner_api, project):
    server = _server(project)
    headers = {"Idempotency-Key": "rescue-1"}
    first = owner_api.post(f"instances/{server.pk}/actions", {"action": "rescue"}, headers=headers)
    again = owner_api.post(f"instances/{server.pk}/actions", {"action": "rescue"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["operation"]["id"] == again.json()["operation"]["id"]
    assert Operation.objects.filter(action="rescue").count() == 1


def test_a_viewer_token_may_not(viewer, org, project, catalog, knobs, token_for):
    server = _server(project)
    _, api = token_for(viewer, org)
    assert_problem(api.post(f"instances/{server.pk}/actions", {"action": "rescue"}), 403)
    server.refresh_from_db()
    assert server.status == "running"


def test_the_schema_documents_the_actions(owner_api):
    schema = owner_api.get("openapi.json").json()
    action = schema["components"]["schemas"]["ActionIn"]["properties"]["action"]
    assert {"rescue", "unrescue"} <= set(action["enum"])
