"""Bearer tokens only: missing, unknown, revoked, expired or orphaned → 401 problem; sessions don't count."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.api.models import ApiToken, hash_secret
from portal.audit.models import AuditEvent
from portal.tenancy.models import Membership
from tests.api.conftest import ApiClient, assert_problem, make_token


def _unauthorized(response, words: str) -> None:
    body = assert_problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert words in body["detail"]


def test_the_secret_is_stored_only_as_a_hash(org, owner):
    token, secret = make_token(owner, org)
    assert secret.startswith("npt_") and len(secret) == 44
    assert token.token_hash == hash_secret(secret) and secret not in token.token_hash
    assert token.display_prefix == secret[:12]
    assert not ApiToken.objects.filter(token_hash__contains=secret[4:]).exists()


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (None, "Send your API token"),
        ("Basic dXNlcjpwYXNz", "Bearer scheme"),
        ("Bearer ", "Bearer scheme"),
        ("Bearer not-ours", "not a Nimbus API token"),
        ("Bearer npt_" + "x" * 40, "Unknown token"),
    ],
)
def test_missing_or_bad_credentials_are_401(header, words, org, owner, client):
    headers = {"Authorization": header} if header else {}
    _unauthorized(client.get("/api/v1/projects", headers=headers), words)


def test_a_revoked_token_is_401_on_the_next_call(org, owner):
    token, secret = make_token(owner, org)
    api = ApiClient(secret)
    assert api.get("projects").status_code == 200
    token.revoked_at = timezone.now()
    token.save()
    _unauthorized(api.get("projects"), "revoked")


def test_an_expired_token_is_401(org, owner):
    token, secret = make_token(owner, org)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    _unauthorized(ApiClient(secret).get("projects"), "expired")


def test_a_token_of_someone_who_left_stops_at_once(org, owner, member):
    _, secret = make_token(member, org)
    Membership.objects.filter(user=member, organization=org).delete()
    _unauthorized(ApiClient(secret).get("projects"), "not a member")


def test_a_web_session_does_not_authenticate_the_api(org, owner, client_as):
    client = client_as(owner)
    _unauthorized(client.get("/api/v1/projects"), "Send your API token")
    # and no CSRF token is needed or consulted with a bearer token
    _, secret = make_token(owner, org)
    response = client.post(
        "/api/v1/ssh-keys", {}, content_type="application/json", headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 422


def test_last_use_is_written_at_most_once_a_minute_and_audited_sparingly(
    org, owner, django_assert_max_num_queries
):
    token, secret = make_token(owner, org)
    api = ApiClient(secret)
    api.get("projects")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None and token.last_used_ip == "127.0.0.1"
    for _ in range(3):
        api.get("projects")
    token.refresh_from_db()
    assert token.last_used_at == first
    assert AuditEvent.objects.filter(action="api_token.used").count() == 1
    # an hour later the next use is recorded and audited again
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(hours=2))
    api.get("projects")
    token.refresh_from_db()
    assert token.last_used_at > first
    assert AuditEvent.objects.filter(action="api_token.used").count() == 2


def test_the_openapi_schema_is_public_and_lists_every_endpoint(client):
    from tests.api.world import ENDPOINTS

    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for endpoint in ENDPOINTS:
        template = "/api/v1/" + endpoint.path
        for name, param in {
            "{project}": "{project_id}",
            "{instance}": "{instance_id}",
            "{operation}": "{operation_id}",
            "{key}": "{key_id}",
            "{unused_firewall}": "{firewall_id}",
            "{firewall}": "{firewall_id}",
            "{rule}": "{rule_id}",
            "{volume}": "{volume_id}",
            "{snapshot}": "{snapshot_id}",
            "{image}": "{image_id}",
            "{network}": "{network_id}",
        }.items():
            template = template.replace(name, param)
        assert endpoint.method in paths[template], endpoint.id
    # ENDPOINTS (networks among them), the console ticket (tests/api/test_console.py), the root
    # password reset (tests/api/test_password_api.py)
    assert len(paths) == 36
    assert schema["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"
    assert client.get("/api/v1/docs").status_code == 200  # the interactive reference
