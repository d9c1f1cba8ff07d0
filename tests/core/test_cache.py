"""The Redis cache keeps one client per connection pool instead of building one per call."""

from __future__ import annotations

import os

import pytest

from portal.core.cache import RedisCache

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="needs Redis (the PostgreSQL + Redis pass)"
)


def test_one_client_serves_every_call_and_values_round_trip():
    cache = RedisCache(os.environ["REDIS_URL"], {"KEY_PREFIX": "cache-client-test"})
    first = cache._cache.get_client(write=True)
    assert cache._cache.get_client() is first
    cache.set("k", {"a": 1}, 30)
    assert cache.get_many(["k", "missing"]) == {"k": {"a": 1}}
    cache.delete("k")
    assert cache._cache.get_client(write=True) is first
