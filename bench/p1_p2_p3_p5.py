"""P1, P2, P3 and P5: the server list under load, queries per page, launch throughput, queue latency.

    .venv/bin/python bench/p1_p2_p3_p5.py [--seconds 10]

A throwaway portal (temporary PORTAL_VAR_DIR; PostgreSQL + Redis in a fresh `portal_bench`
database and Redis db 14 when they answer on 127.0.0.1, else SQLite and the file broker) seeded
with 100 organizations, one project holding 1,000 servers and one holding 10, then, each as a ratio measured in the same run:

  P1  the server list (page 50 of 1,000) requests/s over /healthz requests/s, both served by
      gunicorn (2 workers, DEBUG off) and loaded by wrk on 127.0.0.1;           target >= 0.5
  P2  SQL queries of the list and detail pages at 10 and at 1,000 servers;     target equal, <= 10
  P3  simulated launches completed per second end to end (celery worker -c 2, no boot delay)
      over no-op tasks per second on the same broker, the medians of 5 rounds;  target >= 0.3
  P5  p95 from a transaction's commit to its task starting;                    target < 1 s

Results are merged into bench/results/latest.json (other keys kept) and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
PYTHON = sys.executable
# Two runs at once need their own database and Redis db (the broker and cache are flushed).
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "portal_bench")
BENCH_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14"))
# P3: rounds of 500 no-op tasks then 100 launches (5 of 20 servers); the medians are compared.
P3_ROUNDS = 5
# How often P3 looks whether all tasks or launches are done: well under a measured run (~0.5 s).
POLL_SECONDS = 0.01


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def environment(var_dir: str) -> dict:
    env = {
        "PORTAL_VAR_DIR": var_dir,
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        # The same key here and in gunicorn, so the session made here is valid there.
        "SECRET_KEY": uuid.uuid4().hex * 2,
    }
    for name in ("DATABASE_URL", "REDIS_URL", "EMAIL_URL"):
        os.environ.pop(name, None)
    if answers(5432) and answers(6379):
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {BENCH_DATABASE}")
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DATABASE}"
        env["REDIS_URL"] = f"redis://127.0.0.1:6379/{BENCH_REDIS_DB}"
        import redis

        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    return env


def seed():
    from allauth.account.models import EmailAddress

    from portal.accounts.models import User
    from portal.catalog.demo import load_demo_catalog
    from portal.catalog.models import Flavor, Image, Zone
    from portal.compute.models import Instance
    from portal.tenancy.models import Membership, Organization, Project, Role

    load_demo_catalog()
    zone, flavor, image = (
        Zone.objects.get(code="fra1-a"),
        Flavor.objects.get(code="s-1vcpu-1gb"),
        Image.objects.get(name="Debian 13"),
    )
    user = User.objects.create_user("bench@example.com", "bench-password-1")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    projects = []
    for n in range(100):
        org = Organization.objects.create(name=f"Org {n}", slug=f"org-{n}")
        Membership.objects.create(organization=org, user=user, role=Role.OWNER)
        project = Project(organization=org, name=f"Project {n}", slug="p")
        project.apply_default_quotas()
        project.quota_instances = project.quota_vcpus = project.quota_ram_gib = 5000
        project.save()
        projects.append(project)
    big, small = projects[0], projects[1]
    for project, count in ((big, 1000), (small, 10)):
        Instance.objects.bulk_create(
            Instance(
                project=project,
                name=f"s-{i}",
                zone=zone,
                flavor=flavor,
                image=image,
                root_disk_gib=25,
                status="running",
                backend_id=f"b-{uuid.uuid4().hex[:8]}",
                addresses=[f"100.64.{i // 250}.{i % 250 + 2}"],
            )
            for i in range(count)
        )
    return user, big, small, (zone, flavor, image)


def p2(user, big, small) -> dict:
    """Queries per page as a customer's first visit makes them (the list's kept content retired
    just before) and as a repeat visit does (the content kept: portal.core.fragments)."""
    from django.db import connection
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext

    from portal.core import fragments

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)
    counts = {}
    with override_settings(DEBUG=False):  # as served: with DEBUG on nothing is kept
        for label, project in (("10", small), ("1000", big)):
            list_url = f"/o/{project.organization.slug}/p/{project.slug}/servers/"
            detail_url = project.instances.first().get_absolute_url()
            client.get(list_url)
            fragments.changed(fragments.servers_of(project.pk))
            with CaptureQueriesContext(connection) as q:
                assert client.get(list_url).status_code == 200
            counts[f"list_{label}"] = len(q)
            with CaptureQueriesContext(connection) as q:
                assert client.get(list_url).status_code == 200
            counts[f"list_kept_{label}"] = len(q)
            with CaptureQueriesContext(connection) as q:
                assert client.get(detail_url).status_code == 200
            counts[f"detail_{label}"] = len(q)
    worst = max(counts.values())
    equal = all(counts[f"{page}_10"] == counts[f"{page}_1000"] for page in ("list", "list_kept", "detail"))
    return {
        "value": worst,
        "target": 10,
        "unit": "queries",
        "met": equal and worst <= 10,
        "detail": counts | {"equal": equal},
    }


def in_process_ms(user, big, rounds: int = 100) -> dict:
    """What one request costs inside Django (no HTTP server), DEBUG off: the list as a repeat visit
    gets it (content kept), as a first visit or after any change gets it (rendered), and /healthz."""
    from django.test import Client, override_settings

    from portal.core import fragments

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)
    anonymous = Client(SERVER_NAME="127.0.0.1")
    path = f"/o/{big.organization.slug}/p/{big.slug}/servers/"

    def kept():
        client.get(path)

    def rendered():
        fragments.changed(fragments.servers_of(big.pk))
        client.get(path)

    def healthz():
        anonymous.get("/healthz")

    timings = {}
    with override_settings(DEBUG=False):
        for name, call in (("list_kept_ms", kept), ("list_rendered_ms", rendered), ("healthz_ms", healthz)):
            for _ in range(10):
                call()
            start = time.perf_counter()
            for _ in range(rounds):
                call()
            timings[name] = round((time.perf_counter() - start) / rounds * 1000, 2)
    return timings


def p1(env: dict, user, big, seconds: int) -> dict:
    if not shutil.which("wrk"):
        return {
            "value": None,
            "target": 0.5,
            "unit": "ratio",
            "met": False,
            "detail": {"error": "wrk is not installed (apt-get install wrk)"},
        }
    from django.test import Client

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)
    session = client.cookies["sessionid"].value
    port = 18080
    prod = env | {
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
    }
    subprocess.run(
        [PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=os.environ | prod,
        check=True,
    )
    server = subprocess.Popen(
        [
            str(Path(PYTHON).with_name("gunicorn")),
            "portal.wsgi",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=os.environ | prod,
    )
    try:
        for _ in range(100):
            if answers(port):
                break
            time.sleep(0.1)
        path = f"/o/{big.organization.slug}/p/{big.slug}/servers/"

        def rate(url: str, headers: list[str]) -> tuple[float, str]:
            cmd = ["wrk", "-t2", "-c8", f"-d{seconds}s", *[part for h in headers for part in ("-H", h)], url]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), out

        check = subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                f"Cookie: sessionid={session}",
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
        ).stdout
        assert check == "200", f"list page answered {check}"
        list_rps, _ = rate(f"http://127.0.0.1:{port}{path}", [f"Cookie: sessionid={session}"])
        health_rps, _ = rate(f"http://127.0.0.1:{port}/healthz", [])
    finally:
        server.terminate()
        server.wait(timeout=20)
    ratio = list_rps / health_rps
    in_process = in_process_ms(user, big)
    return {
        "value": round(ratio, 3),
        "target": 0.5,
        "unit": "ratio",
        "met": ratio >= 0.5,
        "detail": {
            "list_rps": list_rps,
            "healthz_rps": health_rps,
            "seconds": seconds,
            "wrk": "-t2 -c8",
            "gunicorn_workers": 2,
            "in_process": in_process,
        },
    }


def worker(env: dict) -> subprocess.Popen:
    fast = env | {"SIMULATED_BOOT_SECONDS": "0", "SIMULATED_ACTION_SECONDS": "0", "COMPUTE_POLL_SECONDS": "0"}
    return subprocess.Popen(
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-c",
            "2",
            "-l",
            "warning",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=os.environ | fast,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def p3_p5(env, user, catalog) -> tuple[dict, dict]:
    from django.core.cache import cache
    from django.db import transaction

    from portal.compute import services
    from portal.compute.models import Instance, SimulatedKnobs, SimulatedServer
    from portal.core.tasks import latency_probe, ping
    from portal.tenancy.access import project_access
    from portal.tenancy.models import Project

    SimulatedKnobs.objects.create(boot_seconds=0, action_seconds=0)
    proc = worker(env)
    try:
        time.sleep(3)
        project = Project.objects.get(organization__slug="org-2")
        access = project_access(user, "org-2", "p")
        zone, flavor, image = catalog
        noop_rates, launch_rates = [], []
        # Each run is about half a second: a few rounds, taking turns, and the median of each.
        for round_ in range(P3_ROUNDS):
            # No-op tasks per second on this broker.
            markers = [uuid.uuid4().hex for _ in range(500)]
            start = time.monotonic()
            for m in markers:
                ping.delay(m)
            while sum(cache.get(f"ping:{m}") is not None for m in markers[-20:]) < 20 or any(
                cache.get(f"ping:{m}") is None for m in markers[::25]
            ):
                time.sleep(POLL_SECONDS)
            noop_rates.append(len(markers) / (time.monotonic() - start))

            # Launches completed per second, end to end: 5 launches of 20 servers, into a zone
            # emptied first (not timed; its address pool holds about 240 servers).
            SimulatedServer.objects.update(deleted=True, address=None)
            Instance.objects.filter(project=project).update(status="terminated", addresses=[])
            start = time.monotonic()
            for n in range(5):
                services.instance_launch(
                    access=access,
                    req=services.LaunchRequest(
                        name=f"r{round_}-b{n}",
                        count=20,
                        zone=zone,
                        flavor=flavor,
                        image=image,
                        root_disk_gib=25,
                    ),
                )
            while Instance.objects.filter(project=project, status="running").count() < 100:
                time.sleep(POLL_SECONDS)
                if time.monotonic() - start > 300:
                    raise RuntimeError("launches did not finish in 5 minutes")
            launch_rates.append(100 / (time.monotonic() - start))
        noop_rate, launch_rate = statistics.median(noop_rates), statistics.median(launch_rates)

        # Commit to task start.
        ids = []
        for _ in range(200):
            marker = uuid.uuid4().hex
            with transaction.atomic():
                transaction.on_commit(lambda m=marker: latency_probe.delay(m, time.time()))
            ids.append(marker)
            time.sleep(0.01)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(cache.get(f"probe:{m}") is None for m in ids):
            time.sleep(0.1)
        delays = sorted(cache.get(f"probe:{m}") for m in ids if cache.get(f"probe:{m}") is not None)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ratio = launch_rate / noop_rate
    p95 = statistics.quantiles(delays, n=20)[-1]
    p3 = {
        "value": round(ratio, 3),
        "target": 0.3,
        "unit": "ratio",
        "met": ratio >= 0.3,
        "detail": {
            "launches_per_s": round(launch_rate, 2),
            "noop_tasks_per_s": round(noop_rate, 1),
            "rounds": P3_ROUNDS,
            "launches_per_s_each_round": [round(rate, 1) for rate in launch_rates],
            "noop_tasks_per_s_each_round": [round(rate, 1) for rate in noop_rates],
            "launches": 100,
            "noop_tasks": 500,
            "worker": "celery -c 2",
            "poll_s": POLL_SECONDS,
        },
    }
    p5 = {
        "value": round(p95, 3),
        "target": 1.0,
        "unit": "s",
        "met": p95 < 1.0,
        "detail": {
            "p50_s": round(statistics.median(delays), 3),
            "samples": len(delays),
            "lost": len(ids) - len(delays),
        },
    }
    return p3, p5


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per URL (P1)")
    parser.add_argument(
        "--only",
        default="P1,P2,P3,P5",
        help="comma-separated metrics to measure (P3 and P5 are measured together); default all",
    )
    args = parser.parse_args()
    only = {name.strip().upper() for name in args.only.split(",")}
    var_dir = tempfile.mkdtemp(prefix="portal-bench-")
    env = environment(var_dir)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    user, big, small, catalog = seed()
    results = {}
    if "P2" in only:
        results["P2"] = p2(user, big, small)
    if "P1" in only:
        results["P1"] = p1(env, user, big, args.seconds)
    if only & {"P3", "P5"}:
        results["P3"], results["P5"] = p3_p5(env, user, catalog)
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "database": connection.vendor,
        "broker": "redis" if "REDIS_URL" in env else "filesystem",
    }
    for value in results.values():
        value["detail"]["machine"] = machine
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    print(f"{'metric':<6} {'value':>10} {'target':>8} {'unit':<8} met")
    for key in sorted(results):
        r = results[key]
        print(f"{key:<6} {r['value']!s:>10} {r['target']!s:>8} {r['unit']:<8} {r['met']}")
    print(json.dumps({k: results[k]["detail"] for k in results}, indent=1, default=str))
    shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
