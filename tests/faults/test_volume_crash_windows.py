"""A real worker killed while it creates or attaches a volume, and the portal recovering by its own
means (as test_crash_windows.py does for servers, with the same crash points and processes).

Killed after the cloud call and before its answer is saved, the retried submit must adopt the
volume the first call made (found by the volume's UUID) instead of making a second, and a retried
attach must change nothing; killed while finishing, the rolled-back transaction must leave the
volume billed once. Each trial ends with the operation finished, one cloud volume per portal volume,
and one open billing segment per existing volume, never two overlapping ones.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from collections import Counter, defaultdict

import pytest

from portal.compute.crashpoints import CrashPoint
from portal.compute.models import Operation, SimulatedKnobs, SimulatedVolume, Volume
from portal.compute.services import volumes as volume_services
from portal.metering.models import UsageSegment
from portal.tenancy.access import project_access
from tests.faults.world import celery, world

pytestmark = [pytest.mark.faults, pytest.mark.worker]

WINDOWS = (CrashPoint.AFTER_CLOUD_CALL, CrashPoint.DURING_FINISH)
TRIALS = 1
LEASE_SECONDS = 3
RECOVERY_TIMEOUT = 90


def _wait(predicate, timeout: float, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(every)
    return None


def _finished(op: Operation, status: str):
    def check() -> bool:
        op.refresh_from_db()
        return op.is_final and Volume.objects.get(pk=op.volume_id).status == status

    return check


def _crash_then_recover(crash_file, point, start, status: str) -> Operation:
    crash_file.write_text(point)
    op = start()
    if _wait(lambda: not crash_file.exists(), RECOVERY_TIMEOUT) is None:
        pytest.fail(f"{op.action} at {point}: no worker reached the window")
    crashed = time.monotonic()
    if _wait(_finished(op, status), RECOVERY_TIMEOUT, every=0.2) is None:
        op.refresh_from_db()
        pytest.fail(f"{op.action} at {point} did not recover: {op.state}, next check {op.next_check_at}")
    assert op.state == "succeeded", op.error_message
    print(f"  {op.action:<14} killed {point:<17} recovered in {time.monotonic() - crashed:.1f} s")
    return op


def _overlaps(project) -> int:
    spans = defaultdict(list)
    for resource, meter, start, end in UsageSegment.objects.filter(
        project=project, meter="volume"
    ).values_list("resource_id", "meter", "started_at", "ended_at"):
        spans[(resource, meter)].append((start, end))
    overlaps = 0
    for periods in spans.values():
        periods.sort()
        for (_, end), (start, _) in itertools.pairwise(periods):
            overlaps += end is None or start < end
    return overlaps


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_creating_or_attaching_a_volume_leaves_one_volume_billed_once(tmp_path):
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
    from portal.compute import services

    try:
        batch = services.instance_launch(
            access=access, req=services.LaunchRequest(**{**vars(req), "name": "db"})
        )
        server = batch.instances.get()
        if (
            _wait(lambda: server.__class__.objects.get(pk=server.pk).status == "running", RECOVERY_TIMEOUT)
            is None
        ):
            pytest.fail("the server did not come up")
        server.refresh_from_db()
        for n, (point, _trial) in enumerate(itertools.product(WINDOWS, range(TRIALS))):
            zone = server.zone
            op = _crash_then_recover(
                crash_file,
                point,
                lambda n=n, zone=zone: volume_services.volume_create(
                    access=access, name=f"v{n}", zone=zone, size_gib=1
                ),
                "available",
            )
            volume = Volume.objects.get(pk=op.volume_id)
            _crash_then_recover(
                crash_file,
                point,
                lambda volume=volume: volume_services.volume_attach(
                    access=access, volume=volume, instance=server
                ),
                "in_use",
            )
            # Detach again (not crashed), so that the server takes the next one.
            detach = volume_services.volume_detach(access=access, volume=volume)
            assert _wait(_finished(detach, "available"), RECOVERY_TIMEOUT, every=0.2), "detach did not finish"
            assert worker.poll() is None, "the worker's parent process died"
        time.sleep(3)  # a late duplicate step has time to show
    finally:
        for process in (beat, worker):
            process.terminate()
        for process in (beat, worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    made = Counter(SimulatedVolume.objects.values_list("idempotency_key", flat=True))  # deleted ones too
    volumes = list(Volume.objects.filter(project=project))
    assert len(volumes) == len(WINDOWS) * TRIALS
    assert set(made) == {str(v.pk) for v in volumes} and all(c == 1 for c in made.values()), made
    assert all(v.status == "available" and v.backend_id for v in volumes)
    open_ = Counter(
        UsageSegment.objects.filter(project=project, meter="volume", ended_at=None).values_list(
            "resource_id", flat=True
        )
    )
    assert open_ == Counter({v.pk: 1 for v in volumes}), "a volume billed twice, or not at all"
    assert _overlaps(project) == 0
    assert not Operation.objects.filter(volume__project=project).active().exists()
