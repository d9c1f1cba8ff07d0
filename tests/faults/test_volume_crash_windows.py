"""A real worker killed while it creates or attaches a volume, and the portal recovering by its own
means (as test_crash_windows.py does for servers, with the same crash points and processes).

Killed after the cloud call and before its answer is saved, the retried submit must adopt the
volume the first call made (found by the volume's UUID) instead of making a second, and a retried
attach must change nothing; killed while finishing, the rolled-back transaction must leave the
volume billed once. Each trial ends with the operation finished, one cloud volume per portal volume,
and one open billing segment per existing volume, never two overlapping ones.
"""

from __future__ import annotations

from collections import Counter

import pytest

from portal.compute.crashpoints import CrashPoint
from portal.compute.models import Operation, SimulatedVolume, Volume
from portal.compute.services import volumes as volume_services
from portal.metering.models import UsageSegment
from tests.faults.storage_windows import (
    RECOVERY_TIMEOUT,
    crash_then_recover,
    overlapping_segments,
    running_server_with_dying_workers,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.worker]

WINDOWS = (CrashPoint.AFTER_CLOUD_CALL, CrashPoint.DURING_FINISH)


def _volume_is(status: str):
    return lambda op: Volume.objects.get(pk=op.volume_id).status == status


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_creating_or_attaching_a_volume_leaves_one_volume_billed_once(tmp_path):
    with running_server_with_dying_workers(tmp_path) as (access, server, crash_file, worker):
        project = server.project
        for n, point in enumerate(WINDOWS):
            op = crash_then_recover(
                crash_file,
                point,
                lambda n=n: volume_services.volume_create(
                    access=access, name=f"v{n}", zone=server.zone, size_gib=1
                ),
                _volume_is("available"),
            )
            volume = Volume.objects.get(pk=op.volume_id)
            crash_then_recover(
                crash_file,
                point,
                lambda volume=volume: volume_services.volume_attach(
                    access=access, volume=volume, instance=server
                ),
                _volume_is("in_use"),
            )
            # Detach again (not crashed), so that the server takes the next one.
            detach = volume_services.volume_detach(access=access, volume=volume)
            assert wait_until(
                lambda detach=detach: (
                    Operation.objects.get(pk=detach.pk).is_final and _volume_is("available")(detach)
                ),
                RECOVERY_TIMEOUT,
                every=0.2,
            ), "detach did not finish"
            assert worker.poll() is None, "the worker's parent process died"

    made = Counter(SimulatedVolume.objects.values_list("idempotency_key", flat=True))  # deleted ones too
    volumes = list(Volume.objects.filter(project=project))
    assert len(volumes) == len(WINDOWS)
    assert set(made) == {str(v.pk) for v in volumes} and all(c == 1 for c in made.values()), made
    assert all(v.status == "available" and v.backend_id for v in volumes)
    open_ = Counter(
        UsageSegment.objects.filter(project=project, meter="volume", ended_at=None).values_list(
            "resource_id", flat=True
        )
    )
    assert open_ == Counter({v.pk: 1 for v in volumes}), "a volume billed twice, or not at all"
    assert overlapping_segments(project, "volume") == 0
    assert not Operation.objects.filter(volume__project=project).active().exists()
