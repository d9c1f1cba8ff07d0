"""P3 and P5: launch throughput against the broker's own, and the delay from commit to task start.

One real worker (`celery -A portal worker -c 2 -I bench.tasks`, simulated cloud with no boot
delay) on the portal's broker:

  P3  simulated launches completed per second end to end over no-op tasks per second on the same
      worker, the medians of ROUNDS rounds taken in turns;               target >= 0.3
  P5  p95 from a transaction's commit to its task starting (on_commit);  target < 1 s
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid

from bench.common import ROOT

# P3: rounds of NOOPS no-op tasks then LAUNCHES launches of LAUNCH_SIZE servers; the medians are compared.
ROUNDS = 5
NOOPS = 500
LAUNCHES, LAUNCH_SIZE = 5, 20
P3_TARGET = 0.3
P5_TARGET = 1.0
P5_SAMPLES = 200
# How often P3 looks whether all tasks or launches are done: well under a measured run (~0.5 s).
POLL_SECONDS = 0.01


def start_worker(env: dict) -> subprocess.Popen:
    fast = env | {"SIMULATED_BOOT_SECONDS": "0", "SIMULATED_ACTION_SECONDS": "0", "COMPUTE_POLL_SECONDS": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-I", "bench.tasks", "-c", "2",
         "-l", "warning", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=os.environ | fast,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_for(done, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not finish in {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def measure(seeded, env: dict, only: set[str]) -> dict:
    from django.core.cache import cache

    from bench.tasks import noop
    from portal.compute.models import SimulatedKnobs

    SimulatedKnobs.objects.create(boot_seconds=0, action_seconds=0)
    worker = start_worker(env)
    try:
        marker = uuid.uuid4().hex
        noop.delay(marker)
        wait_for(lambda: cache.get(f"bench-noop:{marker}") is not None, 120, "the worker's first task")
        results = {}
        if "P3" in only:
            results["P3"] = p3(seeded)
        if "P5" in only:
            results["P5"] = p5()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return results


def p3(seeded) -> dict:
    from django.core.cache import cache

    from bench.tasks import noop
    from portal.compute import services
    from portal.compute.models import Instance, SimulatedServer
    from portal.tenancy.access import project_access

    project = seeded.spare
    access = project_access(seeded.user, project.organization.slug, project.slug)
    zone, flavor, image = seeded.launch
    launched = LAUNCHES * LAUNCH_SIZE
    noop_rates, launch_rates = [], []
    # A run is about half a second: a few rounds, taking turns, and the median of each.
    for round_ in range(ROUNDS):
        markers = [uuid.uuid4().hex for _ in range(NOOPS)]
        start = time.monotonic()
        for m in markers:
            noop.delay(m)
        # Looking at every marker would cost more than the tasks: the last ones, and a sample.
        wait_for(
            lambda ms=markers: all(cache.get(f"bench-noop:{m}") is not None for m in ms[-20:] + ms[::25]),
            120,
            "no-op tasks",
        )
        noop_rates.append(NOOPS / (time.monotonic() - start))

        # Launches completed per second, end to end, into a zone emptied first (not timed; its
        # address pool holds about 240 servers).
        SimulatedServer.objects.update(deleted=True, address=None)
        Instance.objects.filter(project=project).update(status="terminated", addresses=[])
        start = time.monotonic()
        for n in range(LAUNCHES):
            services.instance_launch(
                access=access,
                req=services.LaunchRequest(
                    name=f"r{round_}-b{n}",
                    count=LAUNCH_SIZE,
                    zone=zone,
                    flavor=flavor,
                    image=image,
                    root_disk_gib=25,
                ),
            )
        wait_for(
            lambda: Instance.objects.filter(project=project, status="running").count() >= launched,
            300,
            "launches",
        )
        launch_rates.append(launched / (time.monotonic() - start))
    noop_rate, launch_rate = statistics.median(noop_rates), statistics.median(launch_rates)
    ratio = launch_rate / noop_rate
    print(f"P3 launches/s {launch_rate:.1f} / no-op tasks/s {noop_rate:.1f} = {ratio:.3f}")
    return {
        "value": round(ratio, 3),
        "target": P3_TARGET,
        "unit": "ratio",
        "met": ratio >= P3_TARGET,
        "detail": {
            "launches_per_s": round(launch_rate, 2),
            "noop_tasks_per_s": round(noop_rate, 1),
            "rounds": ROUNDS,
            "launches_per_s_each_round": [round(rate, 1) for rate in launch_rates],
            "noop_tasks_per_s_each_round": [round(rate, 1) for rate in noop_rates],
            "launches": f"{LAUNCHES} x {LAUNCH_SIZE} servers",
            "noop_tasks": NOOPS,
            "worker": "celery -c 2",
            "poll_s": POLL_SECONDS,
        },
    }


def p5() -> dict:
    from django.core.cache import cache
    from django.db import transaction

    from bench.tasks import latency_probe

    markers = []
    for _ in range(P5_SAMPLES):
        marker = uuid.uuid4().hex
        with transaction.atomic():
            transaction.on_commit(lambda m=marker: latency_probe.delay(m, time.time()))
        markers.append(marker)
        time.sleep(0.01)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(cache.get(f"bench-probe:{m}") is None for m in markers):
        time.sleep(0.1)
    delays = sorted(d for m in markers if (d := cache.get(f"bench-probe:{m}")) is not None)
    p95 = statistics.quantiles(delays, n=20)[-1]
    print(f"P5 commit -> task start p95 {p95:.3f} s (p50 {statistics.median(delays):.3f} s)")
    return {
        "value": round(p95, 3),
        "target": P5_TARGET,
        "unit": "s",
        "met": p95 < P5_TARGET and len(delays) == len(markers),
        "detail": {
            "p50_s": round(statistics.median(delays), 3),
            "samples": len(delays),
            "lost": len(markers) - len(delays),
        },
    }
