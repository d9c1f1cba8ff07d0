"""Celery tasks that exist only for the benchmarks: the worker P3 and P5 start loads them with
`celery -A portal worker -I bench.tasks`, so the portal's own modules carry none of them."""

from __future__ import annotations

import time

from celery import shared_task
from django.core.cache import cache


@shared_task(name="bench.noop", time_limit=10, soft_time_limit=8)
def noop(marker: str) -> None:
    """Leave `marker` in the shared cache: the smallest task there is (P3's yardstick)."""
    cache.set(f"bench-noop:{marker}", 1, timeout=300)


@shared_task(name="bench.latency_probe", time_limit=10, soft_time_limit=8)
def latency_probe(marker: str, committed_at: float) -> None:
    """Record how long after its transaction committed this task started (P5)."""
    cache.set(f"bench-probe:{marker}", time.time() - committed_at, timeout=600)
