"""Active sessions keep their "last seen", without a database write on every request."""

from __future__ import annotations

import pytest
from allauth.usersessions.models import UserSession
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def _writes(queries) -> list[str]:
    return [
        q["sql"] for q in queries if q["sql"].startswith(("UPDATE", "INSERT")) and "usersession" in q["sql"]
    ]


def test_a_session_is_recorded_then_written_at_most_once_a_minute(client_as, owner):
    client = client_as(owner)
    home = "/"
    with CaptureQueriesContext(connection) as first:
        client.get(home, REMOTE_ADDR="198.51.100.7")
    assert UserSession.objects.filter(user=owner).count() == 1
    assert _writes(first.captured_queries)
    with CaptureQueriesContext(connection) as again:
        client.get(home, REMOTE_ADDR="198.51.100.7")
    assert not _writes(again.captured_queries)


def test_a_new_address_is_recorded_at_once(client_as, owner):
    client = client_as(owner)
    client.get("/", REMOTE_ADDR="198.51.100.7")
    client.get("/", REMOTE_ADDR="203.0.113.9")
    assert UserSession.objects.get(user=owner).ip == "203.0.113.9"


def test_after_a_minute_last_seen_moves(client_as, owner):
    client = client_as(owner)
    client.get("/", REMOTE_ADDR="198.51.100.7")
    seen = UserSession.objects.get(user=owner).last_seen_at
    cache.clear()  # what a minute does to the throttle
    client.get("/", REMOTE_ADDR="198.51.100.7")
    assert UserSession.objects.get(user=owner).last_seen_at > seen
