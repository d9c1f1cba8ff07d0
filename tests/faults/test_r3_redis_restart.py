"""R3: Redis restarted with 100 launches queued. A test-owned `redis-server` (its own port, no
persistence) holds the launches' messages (one per launch of 20 servers: the simulated cloud
creates a launch's servers together) while a real worker is in the middle of the first one; Redis
is killed (SIGKILL) and started again on the same port, so the 80 servers' queued messages are gone.
The reconciler's beat task finds the operations nobody works on and queues them again; the same
worker, reconnected, brings every server up once: no launch lost, no duplicate server, no leaked
quota, nothing billed twice.

Needs a Redis broker and PostgreSQL, so it runs in the PostgreSQL + Redis pass only.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connection

from portal.compute import reconciler, services
from portal.compute.models import Instance, Operation, SimulatedKnobs, SimulatedServer
from portal.compute.tasks import reconcile as reconcile_task
from portal.tenancy.access import project_access
from tests.faults.world import REDIS_SERVER, PrivateRedis, assert_consistent, free_port, solo_worker, world

pytestmark = [pytest.mark.faults, pytest.mark.worker]

LAUNCHES = 100
PER_MESSAGE = 20  # one launch of 20 servers: one message, as the simulated cloud takes them together


@pytest.fixture
def services_pass(transactional_db) -> None:
    if not settings.REDIS_URL or connection.vendor != "postgresql":
        pytest.skip(
            "R3 needs a Redis broker and PostgreSQL: it runs in the PostgreSQL + Redis pass "
            "(this pass uses the filesystem broker)"
        )
    if REDIS_SERVER is None:
        reason = "R3 starts its own redis-server, and there is none on PATH"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (REQUIRE_SERVICES=1)")
        pytest.skip(reason)


@contextmanager
def _broker(url: str):
    """Point this process's Celery app at `url` (the web and beat processes publish from here)."""
    from portal.celery import app

    def drop_pools() -> None:
        # kombu keeps connection and producer pools in process-wide registries keyed by the
        # broker: closing only the app's pool leaves a closed one there for the next test.
        from kombu import pools

        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    old = app.conf.broker_url, app.conf.broker_transport_options
    drop_pools()
    app.conf.broker_url, app.conf.broker_transport_options = url, {"visibility_timeout": 3600}
    try:
        yield
    finally:
        drop_pools()
        app.conf.broker_url, app.conf.broker_transport_options = old


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def test_r3_redis_restarted_with_100_launches_queued(services_pass, tmp_path, monkeypatch, settings):
    from tests.conftest import worker_env

    org, owner, project, req = world()
    # Each cloud call takes 3 s at first, so the worker is caught in the middle of one launch when
    # Redis dies; the cloud is fast again once Redis is back.
    knobs = SimulatedKnobs.objects.create(
        boot_seconds=0, action_seconds=0, transient_error_rate=0, slow_call_seconds=3
    )
    access = project_access(owner, org.slug, project.slug)
    ops = Operation.objects.filter(instance__project=project)
    broker = PrivateRedis(free_port(), tmp_path)
    broker.start()
    worker = None
    try:
        with _broker(broker.url):
            # The launches commit and enqueue (on_commit) while no worker is consuming: they wait in Redis.
            for i in range(LAUNCHES // PER_MESSAGE):
                services.instance_launch(
                    access=access,
                    req=services.LaunchRequest(**{**vars(req), "name": f"r3-{i}", "count": PER_MESSAGE}),
                )
            assert ops.filter(state="pending").count() == LAUNCHES
            assert broker.queued() == LAUNCHES // PER_MESSAGE, (
                "the launches' messages are not waiting in Redis"
            )

            # A worker (one at a time, prefetching one) starts on the first launch: 80 still queued.
            # A short step lease, so a step whose follow-up message is lost is re-driven in seconds.
            worker = solo_worker(
                worker_env(lease_seconds=10) | {"REDIS_URL": broker.url, "COMPUTE_POLL_SECONDS": "0.2"}
            )
            _wait(
                lambda: (
                    ops.filter(state="running").count() == PER_MESSAGE
                    and broker.queued() == LAUNCHES // PER_MESSAGE - 1
                ),
                30,
                "the worker is busy with one launch and the others are queued",
            )

            broker.kill()  # no persistence: every queued message is gone
            SimulatedKnobs.objects.filter(pk=knobs.pk).update(slow_call_seconds=0)
            broker.start()
            restarted = time.monotonic()
            assert broker.queued() == 0

            # The reconciler leaves operations younger than its grace period (30 s) alone, since their
            # message may still be on its way; shortened here so the test does not wait for it.
            settings.COMPUTE_RECONCILE_GRACE_SECONDS = 1
            reports: list[reconciler.Report] = []
            real_reconcile = reconciler.reconcile

            def reconcile_and_keep_the_report() -> reconciler.Report:
                reports.append(real_reconcile())
                return reports[-1]

            monkeypatch.setattr(reconciler, "reconcile", reconcile_and_keep_the_report)

            running, deadline = 0, time.monotonic() + 60
            while time.monotonic() < deadline:
                reconcile_task()  # the beat task, run here as beat would run it
                wait_until = time.monotonic() + 3
                while time.monotonic() < wait_until:
                    running = Instance.objects.filter(project=project, status="running").count()
                    if running == LAUNCHES:
                        break
                    time.sleep(0.2)
                if running == LAUNCHES:
                    break
            recovered_in = time.monotonic() - restarted
            assert worker.poll() is None, "the worker died with Redis"
    finally:
        if worker is not None:
            worker.kill()
            worker.wait(timeout=10)
        if broker.process and broker.process.poll() is None:
            broker.kill()

    assert running == LAUNCHES, f"only {running} of {LAUNCHES} launches recovered"
    figures = assert_consistent(project)
    servers_made = SimulatedServer.objects.count()
    assert figures == {"servers": LAUNCHES, "running": LAUNCHES, "failed": 0}
    assert servers_made == LAUNCHES, "a server was created twice in the cloud"
    requeued = [len(report.lost) for report in reports]
    # The 80 queued servers, plus the 20 in flight if their next message was lost with Redis too.
    assert LAUNCHES - PER_MESSAGE <= sum(requeued) <= LAUNCHES
    print(
        f"R3: {LAUNCHES} launches ({PER_MESSAGE} on the worker, {LAUNCHES - PER_MESSAGE} queued) when "
        "Redis was killed; "
        f"requeued by the reconciler per run {requeued}; {figures}; {servers_made} servers created "
        f"in the cloud; all running {recovered_in:.1f} s after the restart, same worker process"
    )
