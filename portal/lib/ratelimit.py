"""A fixed-window counter in the shared cache, for actions allauth's limits don't cover.

The cache being down fails open: the attempt is allowed and a warning logged. A limit guards
against abuse; refusing every API request and invitation while Redis restarts would turn a cache
outage into an outage of everything that is rate-limited.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

log = logging.getLogger(__name__)


class RateLimited(Exception):
    """Too many attempts; the message says what to do."""


def consume(key: str, *, limit: int, window: int) -> bool:
    """Count one attempt for `key`; False once more than `limit` happened in this `window` (s)."""
    bucket = f"ratelimit:{key}:{int(time.time() // window)}"
    try:
        cache.add(bucket, 0, timeout=window * 2)
        try:
            count = cache.incr(bucket)
        except ValueError:  # the bucket expired between add and incr
            cache.set(bucket, 1, timeout=window * 2)
            count = 1
    except Exception:  # the cache is unreachable: allowed, and said (see the module's docstring)
        log.warning("rate limit not checked: the cache is unavailable", extra={"key": key}, exc_info=True)
        return True
    return count <= limit
