"""A fixed-window counter in the shared cache, for actions allauth's limits don't cover."""

from __future__ import annotations

import time

from django.core.cache import cache


class RateLimited(Exception):
    """Too many attempts; the message says what to do."""


def consume(key: str, *, limit: int, window: int) -> bool:
    """Count one attempt for `key`; False once more than `limit` happened in this `window` (s)."""
    bucket = f"ratelimit:{key}:{int(time.time() // window)}"
    cache.add(bucket, 0, timeout=window * 2)
    try:
        count = cache.incr(bucket)
    except ValueError:  # the bucket expired between add and incr
        cache.set(bucket, 1, timeout=window * 2)
        count = 1
    return count <= limit
