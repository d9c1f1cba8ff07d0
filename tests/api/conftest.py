from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from portal.api.models import ApiToken, TokenScope


def make_token(user, org, *, scope=TokenScope.READ_WRITE, project=None, billing=False, days=30, name="ci"):
    token = ApiToken(
        user=user,
        organization=org,
        project=project,
        name=name,
        scope=scope,
        billing=billing,
        expires_at=timezone.now() + timedelta(days=days),
    )
    secret = token.set_secret()
    token.save()
    return token, secret


class ApiClient:
    """A test client that sends the bearer token and JSON bodies."""

    def __init__(self, secret: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {secret}"} if secret else {}

    def _call(self, method: str, path: str, body=None, headers=None, **query):
        url = path if path.startswith("/") else f"/api/v1/{path}"
        send = getattr(self.client, method)
        extra = {"headers": self.headers | (headers or {})}
        if method == "get":
            return send(url, query, **extra)
        if body is None:
            return send(url, **extra)
        return send(url, body, content_type="application/json", **extra)

    def get(self, path, **query):
        return self._call("get", path, **query)

    def post(self, path, body=None, headers=None):
        return self._call("post", path, body if body is not None else {}, headers)

    def put(self, path, body=None, headers=None):
        return self._call("put", path, body if body is not None else {}, headers)

    def patch(self, path, body=None, headers=None):
        return self._call("patch", path, body if body is not None else {}, headers)

    def delete(self, path, headers=None):
        return self._call("delete", path, None, headers)


@pytest.fixture
def token_for():
    """token_for(user, org, scope=…, project=…, billing=…) -> (ApiToken, ApiClient)."""

    def make(user, org, **kwargs):
        token, secret = make_token(user, org, **kwargs)
        return token, ApiClient(secret)

    return make


@pytest.fixture
def owner_api(owner, org, catalog, knobs, token_for):
    return token_for(owner, org, billing=True)[1]


def launch_body(project, **overrides) -> dict:
    return {
        "project": project.slug,
        "name": "web",
        "count": 1,
        "zone": "fra1-a",
        "flavor": "s-1vcpu-2gb",
        "image": "Debian 13",
    } | overrides


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= set(body)
    return body
