"""The shared cache (Redis) going down does not take the API with it: the per-token rate limit is
not checked while the cache is unreachable (a warning says so), and requests are answered.

A test-owned redis-server serves as the cache and is killed in the middle of the test."""

from __future__ import annotations

import logging

import pytest
from django.test import override_settings

from tests.faults.world import REDIS_SERVER, PrivateRedis, free_port

pytestmark = pytest.mark.faults


@pytest.fixture
def private_cache(tmp_path):
    if REDIS_SERVER is None:
        pytest.fail("this test starts its own redis-server, and there is none on PATH")
    cache = PrivateRedis(free_port(), tmp_path)
    cache.start()
    backend = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": cache.url}
    with override_settings(CACHES={"default": backend}):  # over before the tests' own cache.clear()
        yield cache
    if cache.process.poll() is None:
        cache.kill()


def test_the_api_answers_while_the_cache_is_down(private_cache, owner_api, project, caplog, settings):
    settings.PORTAL_API_RATE_LIMIT_PER_MINUTE = 2
    assert owner_api.get("/api/v1/instances").status_code == 200
    assert owner_api.get("/api/v1/instances").status_code == 200
    assert owner_api.get("/api/v1/instances").status_code == 429  # the limit works while Redis is up

    private_cache.kill()
    with caplog.at_level(logging.WARNING, logger="portal.lib.ratelimit"):
        response = owner_api.get("/api/v1/instances")
    assert response.status_code == 200, response.content
    assert "rate limit not checked: the cache is unavailable" in caplog.text
