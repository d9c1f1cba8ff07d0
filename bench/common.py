"""What every benchmark shares: a throwaway portal, timing in turns, the results file, the machine."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
METRICS = ("P2", "P3", "P5", "pages")
# Two runs at once need their own database and Redis db (the database is dropped, the Redis db
# flushed).
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "bench_portal")
BENCH_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14"))
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def environment(var_dir: str, sqlite: bool = False) -> dict:
    """The portal's settings as served (DEBUG off), in a fresh database: PostgreSQL + Redis when
    both answer on 127.0.0.1 (unless `sqlite`), else SQLite and the file broker under `var_dir`.
    The benchmark's worker gets the same environment."""
    env = {
        "PORTAL_VAR_DIR": var_dir,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "LOG_LEVEL": "WARNING",
        "DEBUG": "0",
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "testserver,127.0.0.1",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "EMAIL_URL"):
        os.environ.pop(name, None)
    if not sqlite and answers(5432) and answers(6379):
        import psycopg
        import redis

        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {BENCH_DATABASE}")
        env["DATABASE_URL"] = f"{POSTGRES}/{BENCH_DATABASE}"
        env["REDIS_URL"] = f"redis://127.0.0.1:6379/{BENCH_REDIS_DB}"
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    return env


def drop_database(env: dict) -> None:
    if "DATABASE_URL" not in env:
        return  # SQLite: its file goes with the var dir
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")


def django_setup(env: dict) -> None:
    """Settings are read from the environment at import, so it is set first. Static files are
    collected because with DEBUG off every {% static %} is looked up in their manifest."""
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)


def timed_in_turns(
    calls: dict[str, Callable[[], object]], rounds: int, warmup: int
) -> dict[str, list[float]]:
    """Milliseconds per call of each function, taken in turns (a, b, c, a, b, c, …) so that a burst
    of load on a shared machine falls on all of them alike and their ratios stay fair."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - began) * 1000)
    return samples


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def machine() -> dict:
    from django.db import connection

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    with connection.cursor() as cursor:
        cursor.execute("SELECT sqlite_version()" if connection.vendor == "sqlite" else "SHOW server_version")
        version = cursor.fetchone()[0]
    return {
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu or platform.processor(),
        "python": platform.python_version(),
        "database": f"{connection.vendor} {version}",
        "broker": "redis" if os.environ.get("REDIS_URL") else "filesystem",
        "commit": commit,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def write_results(results: dict) -> None:
    """Merge into latest.json: the metrics measured now replace theirs, the others are kept;
    keys of metrics that no longer exist are dropped."""
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current = {key: value for key, value in current.items() if key in METRICS} | results
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def print_summary(results: dict) -> None:
    print(f"\n{'metric':<6} {'value':>10} {'target':>8} {'unit':<8} met")
    for key in METRICS:
        if key in results:
            r = results[key]
            print(f"{key:<6} {r['value']!s:>10} {r['target']!s:>8} {r['unit']:<8} {r['met']}")
    print(json.dumps(results, indent=1, sort_keys=True, default=str))
    print(f"-> {RESULTS.relative_to(ROOT)}", file=sys.stderr)
