"""A real Celery worker process consumes what the portal enqueues, on whichever broker is configured
(the filesystem transport by default, Redis when REDIS_URL is set)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from portal.core.tasks import ping

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--pool",
            "solo",
            "-l",
            "warning",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=os.environ | {"DJANGO_SETTINGS_MODULE": "portal.settings"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.mark.worker
def test_a_worker_process_consumes_enqueued_tasks(worker):
    markers = [uuid.uuid4().hex for _ in range(5)]
    for marker in markers:
        ping.delay(marker)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and worker.poll() is None:
        if all(cache.get(f"ping:{m}") == m for m in markers):
            break
        time.sleep(0.2)
    if worker.poll() is not None:
        pytest.fail(f"worker exited early:\n{worker.stdout.read()}")
    done = [m for m in markers if cache.get(f"ping:{m}") == m]
    print(f"broker={settings.CELERY_BROKER_URL.split(':')[0]} consumed={len(done)}/{len(markers)}")
    assert len(done) == len(markers)
