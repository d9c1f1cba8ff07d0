"""What the fault tests share: a project to launch into, the invariants each test ends with, and
real Celery processes run against this test's database and broker."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import redis

from portal.catalog.demo import load_demo_catalog
from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.models import Instance, Operation, SimulatedServer
from portal.compute.quota import project_usage
from portal.metering.models import UsageSegment
from portal.tenancy.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def celery(env: dict, *args: str) -> subprocess.Popen:
    """`celery -A portal <args>` in a process of its own (its output discarded)."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", *args, "-l", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def solo_worker(env: dict) -> subprocess.Popen:
    return celery(
        env, "worker", "--pool", "solo", "--without-heartbeat", "--without-gossip", "--without-mingle"
    )


def world(quota: int = 500):
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


def assert_consistent(project) -> dict:
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


class PrivateRedis:
    """A throw-away redis-server on 127.0.0.1:<port> that keeps nothing on disk."""

    def __init__(self, port: int, folder) -> None:
        self.port, self.folder, self.process = port, folder, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--protected-mode", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with closing(self.client()) as client:
                    client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def queued(self) -> int:
        """Messages waiting in Celery's queues (one list per priority step)."""
        with closing(self.client()) as client:
            return sum(
                client.llen(key) for key in client.scan_iter(match="celery*") if client.type(key) == b"list"
            )
