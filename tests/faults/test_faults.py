"""Fault injection: what breaks must lose no request, make no duplicate server, leak no quota and
bill nothing twice. Bounded in time; all traffic stays on this machine.

R1 kills a real Celery worker in the middle of provisioning; R2 runs 200 launches through a cloud
that fails 30 % of its calls; R4 races 50 launches for 10 free slots. (The permanent-fault case
of R2 is tests/compute/test_runner.py::test_a_permanent_failure_frees_quota_and_sends_one_email
and ::test_giving_up_after_max_retries_plus_one_calls.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from portal.catalog.demo import load_demo_catalog
from portal.catalog.models import Flavor, Image, Zone
from portal.compute import reconciler, services
from portal.compute.models import Instance, Operation, SimulatedKnobs, SimulatedServer
from portal.compute.quota import project_usage
from portal.metering.models import UsageSegment
from portal.tenancy.access import project_access
from portal.tenancy.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory
from tests.steps import step

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[2]


def _world(quota: int = 500):
    load_demo_catalog()
    org = OrganizationFactory()
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    project = ProjectFactory(
        organization=org, quota_instances=quota, quota_vcpus=10 * quota, quota_ram_gib=10 * quota
    )
    req = services.LaunchRequest(
        name="f",
        count=1,
        zone=Zone.objects.get(code="fra1-a"),
        flavor=Flavor.objects.get(code="s-1vcpu-1gb"),
        image=Image.objects.get(name="Debian 13"),
        root_disk_gib=25,
    )
    return org, owner, project, req


def _assert_consistent(project) -> dict:
    """The invariants every fault test ends with; returns the figures it checked."""
    instances = list(Instance.objects.filter(project=project))
    ops = Operation.objects.filter(instance__project=project)
    assert not ops.filter(state__in=["pending", "running"]).exists(), "an operation was lost"
    keys = Counter(SimulatedServer.objects.filter(deleted=False).values_list("idempotency_key", flat=True))
    assert all(n == 1 for n in keys.values()), "a duplicate server in the cloud"
    running = [i for i in instances if i.status == "running"]
    assert {str(i.pk) for i in running} <= set(keys), "a running server without a cloud server"
    holding = sum(1 for i in instances if i.status != "error" or i.backend_id)
    assert project_usage(project).instances == holding, "quota does not match the servers"
    open_compute = Counter(
        UsageSegment.objects.filter(project=project, meter="compute", ended_at__isnull=True).values_list(
            "resource_id", flat=True
        )
    )
    assert all(n == 1 for n in open_compute.values()), "a server billed twice"
    assert set(open_compute) == {i.pk for i in running}, "billing does not match the running servers"
    return {"servers": len(instances), "running": len(running), "failed": len(instances) - len(running)}


# --- R2 -----------------------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(COMPUTE_MAX_TRANSIENT_RETRIES=12)
def test_r2_200_launches_through_30_percent_transient_faults():
    org, owner, project, req = _world()
    SimulatedKnobs.objects.create(transient_error_rate=0.3, boot_seconds=0, action_seconds=0)
    access = project_access(owner, org.slug, project.slug)
    for i in range(10):
        services.instance_launch(
            access=access, req=services.LaunchRequest(**{**vars(req), "name": f"r2-{i}", "count": 20})
        )
    started = time.monotonic()
    steps = 0
    pending = list(Operation.objects.filter(instance__project=project).values_list("pk", flat=True))
    while pending and time.monotonic() - started < 120:
        pending = [op_id for op_id, s in step(*pending).items() if not s.done]
        steps += 1
    figures = _assert_consistent(project)
    attempts = sum(Operation.objects.filter(instance__project=project).values_list("attempts", flat=True))
    print(
        f"R2: {figures}, {attempts} transient faults retried, {steps} rounds, {time.monotonic() - started:.1f} s"
    )
    assert figures["servers"] == 200 and figures["running"] >= 199


# --- R4 -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_r4_50_concurrent_launches_for_10_free_slots():
    org, owner, project, req = _world(quota=10)
    outcomes: list[str] = []
    barrier = threading.Barrier(50)

    def attempt() -> None:
        try:
            access = project_access(owner, org.slug, project.slug)
            barrier.wait(timeout=30)
            services.instance_launch(access=access, req=req)
            outcomes.append("launched")
        except services.QuotaExceeded:
            outcomes.append("refused")
        except Exception as error:
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    counts = Counter(outcomes)
    print(f"R4 ({connection.vendor}): {dict(counts)} in {time.monotonic() - started:.1f} s")
    assert counts == {"launched": 10, "refused": 40}
    assert Instance.objects.filter(project=project).count() == 10


# --- R1 -----------------------------------------------------------------------------------------


def _worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
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
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.django_db(transaction=True)
def test_r1_sigkill_the_worker_in_the_middle_of_provisioning(settings):
    from tests.conftest import worker_env

    org, owner, project, req = _world()
    SimulatedKnobs.objects.create(boot_seconds=2, action_seconds=1)
    access = project_access(owner, org.slug, project.slug)
    env = worker_env(lease_seconds=2)
    trials, recovered_by_reconciler, started = 20, 0, time.monotonic()
    worker = _worker(env)
    try:
        for trial in range(trials):
            batch = services.instance_launch(
                access=access, req=services.LaunchRequest(**{**vars(req), "name": f"r1-{trial}"})
            )
            # on_commit hooks don't run inside this test's transaction handling: enqueue as the view would.
            from portal.compute.tasks import operations_advance, operations_enqueue

            op = Operation.objects.get(instance__batch=batch)
            operations_advance.delay([[str(op.pk), op.step_token]])
            deadline = time.monotonic() + 30
            while (
                time.monotonic() < deadline
                and not Operation.objects.filter(pk=op.pk, submitted_at__isnull=False).exists()
            ):
                time.sleep(0.05)
            worker.send_signal(signal.SIGKILL)  # mid-provisioning: submitted, not yet running
            worker.wait(timeout=10)
            worker = _worker(env)
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                if Instance.objects.filter(pk=op.instance_id, status="running").exists():
                    break
                if (
                    Operation.objects.get(pk=op.pk).next_check_at
                    and Operation.objects.get(pk=op.pk).next_check_at < timezone.now()
                ):
                    report = reconciler.reconcile(now=timezone.now() + timedelta(seconds=31))
                    operations_enqueue(report.lost)
                    recovered_by_reconciler += bool(report.lost)
                time.sleep(0.3)
            assert Instance.objects.get(pk=op.instance_id).status == "running", (
                f"trial {trial} lost its launch"
            )
    finally:
        worker.kill()
        worker.wait(timeout=10)
    figures = _assert_consistent(project)
    print(
        f"R1: {trials} kills, {figures}, {recovered_by_reconciler} recovered by the reconciler, "
        f"{time.monotonic() - started:.1f} s"
    )
    assert figures["running"] == trials
