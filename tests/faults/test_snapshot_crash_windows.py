"""A real worker killed while it takes a server snapshot, and the portal recovering by its own
means (the crash points and processes of test_crash_windows.py).

Killed after the cloud call and before its answer is saved, the retried submit must adopt the
snapshot the first call made (found by the snapshot's UUID in the cloud's metadata) instead of
taking a second; killed while finishing, the rolled-back transaction must leave the snapshot billed
once. Each trial ends with the operation finished, one cloud snapshot per portal snapshot, and one
open billing segment per snapshot, never two overlapping ones.
"""

from __future__ import annotations

from collections import Counter

import pytest

from portal.compute.crashpoints import CrashPoint
from portal.compute.models import Operation, SimulatedSnapshot, Snapshot, SnapshotStatus
from portal.compute.services.snapshots import snapshot_create
from portal.metering.models import UsageSegment
from tests.faults.storage_windows import (
    crash_then_recover,
    overlapping_segments,
    running_server_with_dying_workers,
)

pytestmark = [pytest.mark.faults, pytest.mark.worker]

WINDOWS = (CrashPoint.AFTER_CLOUD_CALL, CrashPoint.DURING_FINISH)


def _available(op: Operation) -> bool:
    return Snapshot.objects.get(pk=op.snapshot_id).status == SnapshotStatus.AVAILABLE


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_taking_a_snapshot_leaves_one_snapshot_billed_once(tmp_path):
    with running_server_with_dying_workers(tmp_path) as (access, server, crash_file, worker):
        project = server.project
        for n, point in enumerate(WINDOWS):
            crash_then_recover(
                crash_file,
                point,
                lambda n=n: snapshot_create(access=access, instance=server, name=f"before-{n}"),
                _available,
            )
            assert worker.poll() is None, "the worker's parent process died"

    snapshots = list(Snapshot.objects.filter(project=project))
    assert len(snapshots) == len(WINDOWS)
    made = Counter(SimulatedSnapshot.objects.values_list("idempotency_key", flat=True))
    assert set(made) == {str(s.pk) for s in snapshots} and all(c == 1 for c in made.values()), made
    assert all(s.status == SnapshotStatus.AVAILABLE and s.backend_id for s in snapshots)
    open_ = Counter(
        UsageSegment.objects.filter(project=project, meter="snapshot", ended_at=None).values_list(
            "resource_id", flat=True
        )
    )
    assert open_ == Counter({s.pk: 1 for s in snapshots}), "a snapshot billed twice, or not at all"
    assert overlapping_segments(project, "snapshot") == 0
    assert not Operation.objects.filter(snapshot__project=project).active().exists()
