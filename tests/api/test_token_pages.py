"""The API tokens page: create (secret shown once), list, revoke; all audited."""

from __future__ import annotations

import re

from django.urls import reverse

from portal.api.models import ApiToken, TokenScope
from portal.audit.models import AuditEvent
from tests.api.conftest import ApiClient, make_token
from tests.factories import MembershipFactory, UserFactory


def _url(org) -> str:
    return reverse("api:tokens", args=[org.slug])


def _create(client, org, **data):
    return client.post(_url(org), {"name": "autoscaler", "scope": "read_write", "days": 30} | data)


def test_the_secret_is_shown_once_and_works(org, project, owner, client_as):
    client = client_as(owner)
    response = _create(client, org, project=project.pk, billing="on")
    assert response.status_code == 201
    assert response["Cache-Control"].startswith("max-age=0")
    secret = re.search(r'id="token-secret">(npt_[A-Za-z0-9_-]{40})<', response.content.decode()).group(1)
    token = ApiToken.objects.get()
    assert (token.scope, token.billing, token.project, token.user) == (
        TokenScope.READ_WRITE,
        True,
        project,
        owner,
    )
    assert 29 <= (token.expires_at - token.created_at).days <= 30
    page = client.get(_url(org)).content.decode()
    assert secret not in page
    assert token.display_prefix in page and "autoscaler" in page and "Read and write" in page
    assert "never" in page and f"{token.expires_at:%Y-%m-%d}" in page
    assert ApiClient(secret).get("projects").status_code == 200
    page = client.get(_url(org)).content.decode()
    assert "127.0.0.1" in page  # last used from
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.actor == owner and event.changes["scope"][1] == "Read and write + billing"


def test_revoke_stops_the_token_and_is_audited_once(org, owner, client_as):
    token, secret = make_token(owner, org)
    client = client_as(owner)
    url = reverse("api:token_revoke", args=[org.slug, token.pk])
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 302
    assert client.post(url).status_code == 302  # again: nothing more happens
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == owner
    assert AuditEvent.objects.filter(action="api_token.revoked").count() == 1
    assert ApiClient(secret).get("projects").status_code == 401
    assert "revoked" in client.get(_url(org)).content.decode()


def test_members_revoke_only_their_own_tokens_admins_any(org, owner, admin_user, member, client_as):
    token, _ = make_token(owner, org)
    url = reverse("api:token_revoke", args=[org.slug, token.pk])
    refused = client_as(member).post(url)
    assert refused.status_code == 403 and b"Member" in refused.content
    assert token.display_prefix not in client_as(member).get(_url(org)).content.decode()
    assert client_as(admin_user).post(url).status_code == 302
    token.refresh_from_db()
    assert token.revoked_by == admin_user
    assert AuditEvent.objects.get(action="api_token.revoked").changes == {
        "owner": ["owner@example.com", None]
    }


def test_a_viewer_may_create_only_read_tokens(org, viewer, client_as):
    client = client_as(viewer)
    refused = _create(client, org)
    assert refused.status_code == 400 and "Choose read only" in refused.content.decode()
    assert not ApiToken.objects.exists()
    assert _create(client, org, scope="read").status_code == 201


def test_unconfirmed_addresses_cannot_create_tokens(org, client_as):
    user = MembershipFactory(organization=org, role="owner", user=UserFactory(verified=False)).user
    assert _create(client_as(user), org).status_code == 403
    assert not ApiToken.objects.exists()


def test_lifetimes_are_capped_by_the_setting(org, owner, client_as, settings):
    settings.PORTAL_API_TOKEN_MAX_DAYS = 30
    client = client_as(owner)
    assert _create(client, org, days=90).status_code == 400
    assert "90 days" not in client.get(_url(org)).content.decode()
    assert _create(client, org, days=7).status_code == 201


def test_another_organizations_project_cannot_be_chosen(org, owner, outsider, client_as):
    theirs = outsider.memberships.get().organization.projects.get()
    assert _create(client_as(owner), org, project=theirs.pk).status_code == 400
    assert not ApiToken.objects.exists()


def test_the_sidebar_links_the_page(org, viewer, client_as):
    assert (
        _url(org) in client_as(viewer).get(reverse("tenancy:org_dashboard", args=[org.slug])).content.decode()
    )
