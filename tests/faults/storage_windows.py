"""What the storage crash-window tests share: a real worker and beat that die at a crash point
(test_crash_windows.py's mechanism), a running server to work on, the wait for an operation to be
finished by the portal's own recovery, and the billing check that nothing is billed twice."""

from __future__ import annotations

import itertools
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from portal.compute import services
from portal.compute.models import Instance, Operation, SimulatedKnobs
from portal.metering.models import UsageSegment
from portal.tenancy.access import project_access
from tests.faults.world import celery, world

LEASE_SECONDS = 3
RECOVERY_TIMEOUT = 90


def wait_until(predicate, timeout: float, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(every)
    return None


def crash_then_recover(crash_file, point: str, start: Callable[[], Operation], done) -> Operation:
    """Arm the crash point, start the operation, and wait until a worker has died in the window and
    the portal has finished the operation anyway (`done(op)` says when its resource is settled)."""
    crash_file.write_text(point)
    op = start()
    if wait_until(lambda: not crash_file.exists(), RECOVERY_TIMEOUT) is None:
        pytest.fail(f"{op.action} at {point}: no worker reached the window")
    crashed = time.monotonic()

    def finished() -> bool:
        op.refresh_from_db()
        return op.is_final and done(op)

    if wait_until(finished, RECOVERY_TIMEOUT, every=0.2) is None:
        op.refresh_from_db()
        pytest.fail(f"{op.action} at {point} did not recover: {op.state}, next check {op.next_check_at}")
    assert op.state == "succeeded", op.error_message
    print(f"  {op.action:<15} killed {point:<17} recovered in {time.monotonic() - crashed:.1f} s")
    return op


def overlapping_segments(project, meter: str) -> int:
    """How many times one resource's billing periods on `meter` overlap (a double charge)."""
    spans = defaultdict(list)
    for resource, start, end in UsageSegment.objects.filter(project=project, meter=meter).values_list(
        "resource_id", "started_at", "ended_at"
    ):
        spans[resource].append((start, end))
    overlaps = 0
    for periods in spans.values():
        periods.sort()
        for (_, end), (start, _) in itertools.pairwise(periods):
            overlaps += end is None or start < end
    return overlaps


@contextmanager
def running_server_with_dying_workers(tmp_path) -> Iterator[tuple]:
    """(access, server, crash_file, worker): a server running in fra1-a, a worker of two processes
    that kills the process reaching the crash point named in `crash_file`, and beat for the
    reconciler that recovers what the dead process left."""
    from tests.conftest import worker_env

    org, owner, project, req = world()
    SimulatedKnobs.objects.create(boot_seconds=0.5, action_seconds=0.5)
    access = project_access(owner, org.slug, project.slug)
    crash_file = tmp_path / "crash"
    env = worker_env(lease_seconds=LEASE_SECONDS) | {
        "COMPUTE_CRASH_FILE": str(crash_file),
        "COMPUTE_RECONCILE_SECONDS": "1",
        "COMPUTE_RECONCILE_GRACE_SECONDS": "2",
        "COMPUTE_POLL_SECONDS": "0.3",
    }
    worker = celery(
        env, "worker", "--concurrency", "2", "--without-heartbeat", "--without-gossip", "--without-mingle"
    )
    beat = celery(env, "beat", "--schedule", str(tmp_path / "beat-schedule"))
    try:
        batch = services.instance_launch(
            access=access, req=services.LaunchRequest(**{**vars(req), "name": "db"})
        )
        server = batch.instances.get()
        if (
            wait_until(lambda: Instance.objects.get(pk=server.pk).status == "running", RECOVERY_TIMEOUT)
            is None
        ):
            pytest.fail("the server did not come up")
        server.refresh_from_db()
        yield access, server, crash_file, worker
        time.sleep(3)  # a late duplicate step has time to show
    finally:
        for process in (beat, worker):
            process.terminate()
        for process in (beat, worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
