"""/healthz: what a load balancer or uptime monitor sees."""

from __future__ import annotations

import pytest

from portal.core.views import celery_app

pytestmark = pytest.mark.django_db

# Port 1 on loopback: nothing listens there, so the connection is refused at once.
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def broker_down():
    """Point the app at a broker that refuses connections; yields a function that undoes it."""
    previous = celery_app.conf.broker_url

    def restore() -> None:
        celery_app.conf.broker_url = previous

    celery_app.conf.broker_url = UNREACHABLE_BROKER
    try:
        yield restore
    finally:
        restore()


def test_healthz_reports_ok_when_everything_is_up(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_healthz_is_never_cached(client):
    response = client.get("/healthz")

    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_healthz_needs_no_sign_in(client):
    response = client.get("/healthz", follow=False)

    assert response.status_code == 200


def test_healthz_is_503_and_names_the_broker_when_the_broker_is_down(client, broker_down):
    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"] != "ok"
    # What failed, without connection details (host names, users) for anonymous callers.
    assert body["checks"]["broker"].startswith("unavailable (")
    assert "127.0.0.1" not in response.content.decode()


def test_healthz_recovers_when_the_broker_is_back(client, broker_down):
    assert client.get("/healthz").status_code == 503
    broker_down()

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == "ok"


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_healthz_only_answers_get(client, method):
    response = getattr(client, method)("/healthz")

    assert response.status_code == 405
    assert "GET" in response["Allow"]
