"""A real Celery worker process consumes what the portal enqueues, on whichever broker is configured
(the filesystem transport by default, Redis when REDIS_URL is set)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from portal.core.tasks import ping

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """`celery worker` in a child process, its output collected line by line as it comes."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
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
                "info",
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
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)[-4000:]

    def wait_until_ready(self, timeout: float) -> None:
        """Celery logs "celery@host ready." once it consumes; a slow machine may take a while to
        import the portal, and that start-up time is not what this test measures."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if any(" ready." in line for line in self.lines):
                return
            time.sleep(0.2)
        pytest.fail(f"the worker did not say it was ready within {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def worker():
    started = Worker()
    yield started
    started.stop()


@pytest.mark.worker
def test_a_worker_process_consumes_enqueued_tasks(worker):
    worker.wait_until_ready(timeout=120)
    markers = [uuid.uuid4().hex for _ in range(5)]
    for marker in markers:
        ping.delay(marker)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and worker.process.poll() is None:
        if all(cache.get(f"ping:{m}") == m for m in markers):
            break
        time.sleep(0.2)
    done = [m for m in markers if cache.get(f"ping:{m}") == m]
    print(f"broker={settings.CELERY_BROKER_URL.split(':')[0]} consumed={len(done)}/{len(markers)}")
    assert len(done) == len(markers), (
        f"consumed {len(done)}/{len(markers)}; the worker printed:\n{worker.output()}"
    )
