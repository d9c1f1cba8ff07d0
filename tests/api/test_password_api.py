"""Root password reset over the API: POST /instances/{id}/password answers the new password once
(the simulated guest takes it), 409 when not running or the zone cannot, console roles (a viewer
403, another organization 404), and an Idempotency-Key retry resets nothing again and does not
hand the password out a second time."""

from __future__ import annotations

import pytest

from portal.audit.models import AuditAction, AuditEvent
from portal.compute.models import Instance, Operation, SimulatedServer
from tests.api.conftest import assert_problem
from tests.compute.test_password_reset import _log_in
from tests.steps import drive


@pytest.fixture
def server(launch):
    batch = launch(name="web")
    drive(Operation.objects.get(instance__batch=batch))
    return Instance.objects.get(batch=batch)


def _hashes(server) -> dict:
    return SimulatedServer.objects.get(backend_id=server.backend_id).password_hashes


def test_the_new_password_is_answered_and_the_guest_takes_it(owner_api, server):
    answer = owner_api.post(f"instances/{server.pk}/password")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["user"] == "root" and len(body["password"]) == 24 and body["reset_at"]
    assert b"root@web:~$ " in _log_in(server.backend_id, "root", body["password"])
    event = AuditEvent.objects.get(action=AuditAction.INSTANCE_PASSWORD_RESET)
    assert body["password"] not in str(event.changes)


def test_a_retry_with_the_same_key_resets_once_and_shows_no_password(owner_api, server):
    headers = {"Idempotency-Key": "reset-1"}
    first = owner_api.post(f"instances/{server.pk}/password", headers=headers)
    hashes = _hashes(server)
    again = owner_api.post(f"instances/{server.pk}/password", headers=headers)
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true" and again.json()["password"] is None
    assert again.json()["reset_at"] == first.json()["reset_at"]
    assert _hashes(server) == hashes  # not reset a second time: the first password still works
    assert b"root@web:~$ " in _log_in(server.backend_id, "root", first.json()["password"])
    assert AuditEvent.objects.filter(action=AuditAction.INSTANCE_PASSWORD_RESET).count() == 1
    fresh = owner_api.post(f"instances/{server.pk}/password", headers={"Idempotency-Key": "reset-2"})
    assert fresh.json()["password"] not in (None, first.json()["password"])


def test_not_running_or_a_zone_without_it_is_a_conflict(owner_api, server):
    Instance.objects.filter(pk=server.pk).update(status="stopped")
    body = assert_problem(owner_api.post(f"instances/{server.pk}/password"), 409)
    assert "while it runs" in body["detail"]
    Instance.objects.filter(pk=server.pk).update(status="running")
    server.zone.backend_settings = {"absent": ["password_reset"]}
    server.zone.save()
    body = assert_problem(owner_api.post(f"instances/{server.pk}/password"), 409)
    assert body["detail"] == f"Root password reset is not available in {server.zone.code}."
    assert _hashes(server) == {}


def test_a_viewer_token_may_not_and_another_organization_sees_nothing(
    viewer, outsider, org, project, server, token_for
):
    from portal.tenancy.models import Organization

    _, api = token_for(viewer, org)
    assert_problem(api.post(f"instances/{server.pk}/password"), 403)
    _, theirs = token_for(outsider, Organization.objects.get(slug="other"))
    assert_problem(theirs.post(f"instances/{server.pk}/password"), 404)
    _, read_only = token_for(
        server.project.organization.memberships.get(role="owner").user, org, scope="read"
    )
    assert read_only.post(f"instances/{server.pk}/password").status_code == 403
    assert _hashes(server) == {}
