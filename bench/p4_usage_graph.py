"""P4: the usage graph's p95 over a year of history, and its speed-up over raw segments.

    .venv/bin/python bench/p4_usage_graph.py [--requests 100] [--keep]

In a throwaway SQLite database (a temporary PORTAL_VAR_DIR, migrated from scratch) it seeds 100
organizations x 2 projects x 5 servers = 1,000 servers plus 300 volumes with a year of hourly
history: compute (and Windows licence) usage is one segment per running hour, as an hourly meter
writes it (servers start in the first weeks of the year or later, run for 2-21 days, stop for
6 h - 4 days, some are terminated); disks and volumes are one segment each while they exist. It
rolls them up with portal.metering.rollup.rollup_period (hourly for the last 35 days, daily for
the year), then measures for one organization, 30 days and 12 months:

  - `portal.metering.selectors.daily_usage` (daily rollups + today's segments): what the graph
    endpoint reads;
  - the graph endpoint itself (`metering:org_usage_json`) through django.test.Client, when it
    exists;
  - the same days aggregated straight from the window's raw segments
    (`metering.rollup.buckets` over `segment_rows`), as a page without rollups would.

A 101st organization whose 10 servers' history is one segment per run (as the portal writes its
own segments) is measured apart, to show the ratio when raw history is sparse.

The results are checked to agree, then merged into bench/results/latest.json under "P4" (other
keys are kept) and printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
ORGANIZATIONS, PROJECTS_PER_ORG, SERVERS_PER_PROJECT, VOLUMES = 100, 2, 5, 300
HOURLY_DAYS, YEAR_DAYS = 35, 365
SPARSE_SERVERS = 10
TARGET_30D_MS, TARGET_12M_MS, TARGET_SPEEDUP = 50.0, 150.0, 20.0


def setup_django(var_dir: str) -> None:
    """A fresh, private portal: settings read the environment at import, so set it first."""
    os.environ["PORTAL_VAR_DIR"] = var_dir
    for name in ("DATABASE_URL", "REDIS_URL", "EMAIL_URL"):
        os.environ.pop(name, None)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def seed(rng: random.Random, now: datetime) -> dict:
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from portal.catalog.demo import load_demo_catalog
    from portal.catalog.models import Flavor, Image, Zone
    from portal.compute.models import Instance, Volume
    from portal.metering.models import Meter, ResourceType, UsageSegment
    from portal.metering.rollup import floor_day, floor_hour
    from portal.metering.segments import segment_row
    from portal.tenancy.models import Membership, Organization, Project, Role

    load_demo_catalog()
    zones = list(Zone.objects.filter(status="available").select_related("region"))
    flavors = list(Flavor.objects.filter(vcpus__lte=8))
    images = list(Image.objects.all())
    year_start = floor_day(now) - timedelta(days=YEAR_DAYS)

    orgs = Organization.objects.bulk_create(
        Organization(name=f"Bench org {i:03d}", slug=f"bench-{i:03d}") for i in range(ORGANIZATIONS)
    )
    orgs = list(Organization.objects.order_by("slug"))
    Organization.objects.update(created_at=year_start - timedelta(days=30))
    projects = Project.objects.bulk_create(
        Project(organization=org, name=f"Project {j}", slug=f"project-{j}", default_zone=rng.choice(zones))
        for org in orgs
        for j in range(PROJECTS_PER_ORG)
    )
    projects = list(Project.objects.select_related("organization", "default_zone"))
    user = get_user_model().objects.create_user(email="bench@example.com")  # signed in with force_login
    Membership.objects.create(organization=orgs[42], user=user, role=Role.OWNER)

    instances, segments, runs = [], [], []
    now_hour = floor_hour(now)

    def segment(project, rtype, rid, name, zone, meter, quantity, price, start, end, vcpus=0, ram=0):
        segments.append(
            segment_row(
                project=project,
                zone=zone,
                resource_type=rtype,
                resource_id=rid,
                name=name,
                meter=meter,
                quantity=quantity,
                unit_price=price,
                start=start,
                end=end,
                vcpus=vcpus,
                ram_gib=ram,
            )
        )

    for project in projects:
        zone = project.default_zone
        for k in range(SERVERS_PER_PROJECT):
            flavor, image = rng.choice(flavors), rng.choice(images)
            born = floor_hour(
                year_start + timedelta(days=rng.uniform(0, 20) if rng.random() < 0.6 else rng.uniform(0, 330))
            )
            dies = floor_hour(born + timedelta(days=rng.uniform(5, 200))) if rng.random() < 0.15 else None
            dies = dies if dies is None or dies < now_hour else None
            instance = Instance(
                project=project,
                name=f"web-{k + 1}",
                zone=zone,
                flavor=flavor,
                image=image,
                root_disk_gib=max(image.min_disk_gib, flavor.root_disk_gib),
                status="terminated" if dies else "running",
                terminated_at=dies,
            )
            instances.append(instance)
            stop = dies or now_hour
            segment(
                project,
                ResourceType.INSTANCE,
                instance.id,
                instance.name,
                zone,
                Meter.DISK,
                instance.root_disk_gib,
                settings.PORTAL_DISK_PRICE_GIB_HOUR,
                born,
                dies,
            )
            # Hourly history: every running hour is a segment of its own (the last one still open).
            t = born
            while t < stop:
                end = floor_hour(min(t + timedelta(days=rng.uniform(2, 21)), stop))
                for meter, price in (
                    (Meter.COMPUTE, flavor.price_hourly),
                    (Meter.LICENSE, image.license_price_hourly),
                ):
                    if not price:
                        continue
                    compute = meter == Meter.COMPUTE
                    vcpus, ram = (flavor.vcpus, flavor.ram_gib) if compute else (0, 0)
                    hours = int((end - t).total_seconds() // 3600)
                    who = (project.organization_id, project.pk, ResourceType.INSTANCE, instance.id.hex)
                    runs.append(
                        (*who, instance.name, zone.pk, meter, 1, str(price), vcpus, ram, sql_time(t), hours)
                    )
                    if end == now_hour:  # still running: the current hour's segment is open
                        segment(
                            project, ResourceType.INSTANCE, instance.id, instance.name, zone, meter,
                            1, price, now_hour, None, vcpus, ram,
                        )  # fmt: skip
                t = floor_hour(end + timedelta(hours=rng.uniform(6, 96)))
    Instance.objects.bulk_create(instances, batch_size=1000)

    volumes = []
    for i in range(VOLUMES):
        project = rng.choice(projects)
        born = year_start + timedelta(days=rng.uniform(0, 300))
        volume = Volume(
            project=project,
            name=f"data-{i}",
            zone=project.default_zone,
            size_gib=rng.choice([50, 100, 250, 500]),
        )
        volumes.append(volume)
        segment(
            project,
            ResourceType.VOLUME,
            volume.id,
            volume.name,
            volume.zone,
            Meter.VOLUME,
            volume.size_gib,
            settings.PORTAL_VOLUME_PRICE_GIB_HOUR,
            born,
            None,
        )
    Volume.objects.bulk_create(volumes, batch_size=1000)
    UsageSegment.objects.bulk_create(segments, batch_size=2000)
    insert_hourly(runs)
    return {"organization": orgs[42], "user": user, "year_start": year_start}


def sql_time(moment: datetime) -> str:
    """A UTC datetime as Django's SQLite backend stores it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def insert_hourly(runs: list[tuple]) -> None:
    """Expand each run (..., first hour, hours) into one closed segment per hour, inside SQLite:
    millions of rows are too many to build as model instances."""
    from django.db import connection

    columns = (
        "organization_id, project_id, resource_type, resource_id, resource_name, zone_id, meter,"
        " quantity, unit_price, vcpus, ram_gib"
    )
    # Constant SQL: the f-strings only splice the column list above.
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE bench_runs ({columns}, first_hour, hours)")
        cursor.executemany(f"INSERT INTO bench_runs VALUES ({', '.join(['%s'] * 13)})", runs)  # noqa: S608
        cursor.execute("CREATE TEMP TABLE bench_hours (n INTEGER PRIMARY KEY)")
        cursor.executemany("INSERT INTO bench_hours VALUES (%s)", [(n,) for n in range(YEAR_DAYS * 24 + 48)])
        cursor.execute(
            f"INSERT INTO metering_usagesegment ({columns}, started_at, ended_at)"  # noqa: S608
            f" SELECT {columns}, datetime(first_hour, '+' || n || ' hours'),"
            " datetime(first_hour, '+' || (n + 1) || ' hours')"
            " FROM bench_runs JOIN bench_hours ON n < hours"
        )
        cursor.execute("DROP TABLE bench_runs")
        cursor.execute("DROP TABLE bench_hours")


def seed_sparse(rng: random.Random, now: datetime, year_start: datetime):
    """A 101st organization, measured apart: 10 servers that run all year in runs of 2-21 days,
    with one segment per run (how the portal writes its own segments): sparse raw history."""
    from django.conf import settings

    from portal.catalog.models import Flavor, Image, Zone
    from portal.compute.models import Instance
    from portal.metering.models import Meter, ResourceType, UsageSegment
    from portal.metering.segments import segment_row
    from portal.tenancy.models import Organization, Project

    org = Organization.objects.create(name="Bench sparse", slug="bench-sparse")
    Organization.objects.filter(pk=org.pk).update(created_at=year_start - timedelta(days=30))
    zone = Zone.objects.filter(status="available").first()
    project = Project.objects.create(organization=org, name="Web", slug="web", default_zone=zone)
    flavor, image = (
        Flavor.objects.order_by("vcpus").first(),
        Image.objects.filter(license_price_hourly=0).first(),
    )
    segments, instances = [], []
    for k in range(SPARSE_SERVERS):
        instance = Instance(
            project=project, name=f"app-{k}", zone=zone, flavor=flavor, image=image, root_disk_gib=25
        )
        instances.append(instance)
        common = {
            "project": project,
            "zone": zone,
            "resource_type": ResourceType.INSTANCE,
            "resource_id": instance.id,
            "name": instance.name,
        }
        segments.append(
            segment_row(
                **common,
                meter=Meter.DISK,
                quantity=25,
                unit_price=settings.PORTAL_DISK_PRICE_GIB_HOUR,
                start=year_start,
                end=None,
            )
        )
        t = year_start + timedelta(hours=rng.uniform(0, 48))
        while t < now:
            end = t + timedelta(days=rng.uniform(2, 21))
            segments.append(
                segment_row(
                    **common,
                    meter=Meter.COMPUTE,
                    quantity=1,
                    unit_price=flavor.price_hourly,
                    vcpus=flavor.vcpus,
                    ram_gib=flavor.ram_gib,
                    start=t,
                    end=end if end < now else None,
                )
            )
            t = end + timedelta(hours=rng.uniform(6, 96))
    Instance.objects.bulk_create(instances)
    UsageSegment.objects.bulk_create(segments)
    return org, len(segments)


def roll_up(now: datetime) -> int:
    from portal.metering.models import Granularity, RollupCursor
    from portal.metering.rollup import floor_day, floor_hour, rollup_period

    hour_end = floor_hour(now)
    rows = rollup_period(hour_end - timedelta(days=HOURLY_DAYS), hour_end, Granularity.HOUR, now)
    rows += rollup_period(floor_day(now) - timedelta(days=YEAR_DAYS), floor_day(now), Granularity.DAY, now)
    RollupCursor.objects.create(next_hour=hour_end)
    return rows


def raw_daily_usage(*, start: date, end: date, now: datetime, **scope) -> list:
    """The graph's numbers straight from the window's segments: what a page without rollups does."""
    from portal.metering.models import Granularity
    from portal.metering.rollup import buckets, segment_rows
    from portal.metering.selectors import STORAGE_METERS, DayUsage

    begin = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    finish = min(datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC), now)
    days = {
        start + timedelta(days=i): DayUsage(start + timedelta(days=i)) for i in range((end - start).days + 1)
    }
    totals = buckets(segment_rows(begin, finish, **scope), begin, finish, Granularity.DAY, now)
    for (_project, _org, _zone, meter, bucket), (quantity, vcpu, ram, cost) in totals.items():
        day = days[bucket.date()]
        day.cost_by_meter[meter] = day.cost_by_meter.get(meter, Decimal(0)) + cost
        day.vcpu_hours += vcpu
        day.ram_gib_hours += ram
        if meter in STORAGE_METERS:
            day.storage_gib_hours += quantity
    return list(days.values())


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[18]


def timed(fns: dict, runs: int, warmup: int = 3) -> dict[str, list[float]]:
    """Milliseconds per call of each function, taken in turns (a, b, c, a, b, c, …) so a burst of
    load on this shared machine falls on all of them alike and their ratios stay fair."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            began = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - began) * 1000)
    return samples


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu or platform.processor(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "database": "SQLite (fresh file in a temporary PORTAL_VAR_DIR)",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="timed requests per measurement (>= 30)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the temporary database directory")
    args = parser.parse_args()
    runs = max(args.requests, 30)
    var_dir = tempfile.mkdtemp(prefix="portal-bench-p4-")
    try:
        return run(var_dir, runs, random.Random(args.seed))
    finally:
        if args.keep:
            print(f"database kept in {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)


def run(var_dir: str, runs: int, rng: random.Random) -> int:
    began = time.perf_counter()
    setup_django(var_dir)
    from django.test import Client
    from django.test.utils import override_settings
    from django.urls import reverse
    from django.utils import timezone

    from portal.compute.models import Instance
    from portal.metering.models import UsageRollup, UsageSegment
    from portal.metering.selectors import daily_usage

    now = timezone.now()
    # Not DEBUG while seeding and rolling up: Django would keep and quote every query.
    quiet = override_settings(DEBUG=False)
    quiet.enable()
    print(
        f"seeding {ORGANIZATIONS * PROJECTS_PER_ORG * SERVERS_PER_PROJECT} servers in {var_dir} …", flush=True
    )
    seeded = seed(rng, now)
    main_segments = UsageSegment.objects.count()
    main_instances = Instance.objects.count()
    sparse_org, sparse_segments = seed_sparse(rng, now, seeded["year_start"])
    seeded_s = time.perf_counter() - began
    print(f"rolling up (hourly {HOURLY_DAYS} days, daily {YEAR_DAYS} days) …", flush=True)
    t0 = time.perf_counter()
    roll_up(now)
    rollup_s = time.perf_counter() - t0
    quiet.disable()
    org = seeded["organization"]
    today = now.date()
    windows = {"30d": (today - timedelta(days=29), today), "12m": (today - timedelta(days=364), today)}

    def selector(who, start, end):
        return lambda: daily_usage(start=start, end=end, now=now, organization=who)

    def raw_segments(who, start, end):
        return lambda: raw_daily_usage(start=start, end=end, now=now, organization=who)

    results: dict = {}
    with override_settings(DEBUG=False, ALLOWED_HOSTS=["testserver"]):
        for key, (start, end) in windows.items():
            for who in (org, sparse_org):
                gap = abs(
                    sum(d.cost for d in selector(who, start, end)())
                    - sum(d.cost for d in raw_segments(who, start, end)())
                )
                if gap > Decimal("0.01"):
                    print(f"rollups and raw segments disagree for {who.slug}, {key}: {gap}", file=sys.stderr)
                    return 1
        url = reverse("metering:org_usage_json", args=[org.slug])
        client = Client()
        client.force_login(seeded["user"])
        for key, (start, end) in windows.items():
            response = client.get(url, {"period": key})
            if response.status_code != 200:
                print(f"{url}?period={key} answered {response.status_code}", file=sys.stderr)
                return 1
            results[key] = timed(
                {
                    "selector": selector(org, start, end),
                    "endpoint": lambda k=key: client.get(url, {"period": k}),
                    "raw": raw_segments(org, start, end),
                    "sparse_selector": selector(sparse_org, start, end),
                    "sparse_raw": raw_segments(sparse_org, start, end),
                },
                runs,
            )

    figures = {
        key: {name: round(p95(samples), 2) for name, samples in r.items() if isinstance(samples, list)}
        for key, r in results.items()
    }
    speedup = {key: round(f["raw"] / f["selector"], 1) for key, f in figures.items()}
    value, value_30d = figures["12m"]["endpoint"], figures["30d"]["endpoint"]
    met = value_30d < TARGET_30D_MS and value < TARGET_12M_MS and min(speedup.values()) >= TARGET_SPEEDUP
    detail = {
        "p95_30d_ms": figures["30d"]["selector"],
        "p95_12m_ms": figures["12m"]["selector"],
        "endpoint_p95_30d_ms": figures["30d"]["endpoint"],
        "endpoint_p95_12m_ms": figures["12m"]["endpoint"],
        "raw_p95_30d_ms": figures["30d"]["raw"],
        "raw_p95_12m_ms": figures["12m"]["raw"],
        "speedup_30d": speedup["30d"],
        "speedup_12m": speedup["12m"],
        "value_is": "graph endpoint p95, 12 months",
        "targets": {
            "p95_30d_ms": TARGET_30D_MS,
            "p95_12m_ms": TARGET_12M_MS,
            "speedup": TARGET_SPEEDUP,
        },
        "requests_per_measurement": runs,
        "organizations": ORGANIZATIONS,
        "instances": main_instances,
        "volumes": VOLUMES,
        "segments": main_segments,
        "segments_of_measured_org": UsageSegment.objects.filter(organization=org).count(),
        # Measured apart, not part of the figures above: an organization whose history is sparse.
        "sparse_org": {
            "instances": SPARSE_SERVERS,
            "segments": sparse_segments,
            "p95_30d_ms": figures["30d"]["sparse_selector"],
            "p95_12m_ms": figures["12m"]["sparse_selector"],
            "raw_p95_30d_ms": figures["30d"]["sparse_raw"],
            "raw_p95_12m_ms": figures["12m"]["sparse_raw"],
            "speedup_30d": round(figures["30d"]["sparse_raw"] / figures["30d"]["sparse_selector"], 1),
            "speedup_12m": round(figures["12m"]["sparse_raw"] / figures["12m"]["sparse_selector"], 1),
        },
        "rollup_rows": UsageRollup.objects.count(),
        "rollup_rows_hourly": UsageRollup.objects.filter(granularity="hour").count(),
        "rollup_rows_daily": UsageRollup.objects.filter(granularity="day").count(),
        "seed_seconds": round(seeded_s, 1),
        "rollup_seconds": round(rollup_s, 1),
        "measured_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
    }
    entry = {"value": value, "target": TARGET_12M_MS, "unit": "ms", "met": met, "detail": detail}
    write_results(entry)
    print_table(entry)
    return 0


def write_results(entry: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current["P4"] = entry
    RESULTS.write_text(json.dumps(current, indent=2) + "\n")


def print_table(entry: dict) -> None:
    d = entry["detail"]
    rows = [
        ("daily_usage selector", d["p95_30d_ms"], d["p95_12m_ms"]),
        ("graph endpoint (JSON)", d["endpoint_p95_30d_ms"], d["endpoint_p95_12m_ms"]),
        ("raw segments", d["raw_p95_30d_ms"], d["raw_p95_12m_ms"]),
    ]
    print()
    print(f"P4 usage graph, p95 over {d['requests_per_measurement']} requests (ms)")
    print(f"{'':24} {'30 days':>10} {'12 months':>10}")
    for name, a, b in rows:
        cell = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"{name:24} {cell(a):>10} {cell(b):>10}")
    print(f"{'speed-up over raw':24} {d['speedup_30d']:>9}x {d['speedup_12m']:>9}x")
    print(f"{'target':24} {'< 50':>10} {'< 150':>10}   and >= 20x")
    c = d["sparse_org"]
    print(
        f"\nsparse organization ({c['instances']} servers, one segment per run: {c['segments']} segments), measured apart:"
    )
    print(f"{'daily_usage selector':24} {c['p95_30d_ms']:>10.2f} {c['p95_12m_ms']:>10.2f}")
    print(f"{'raw segments':24} {c['raw_p95_30d_ms']:>10.2f} {c['raw_p95_12m_ms']:>10.2f}")
    print(f"{'speed-up over raw':24} {c['speedup_30d']:>9}x {c['speedup_12m']:>9}x")
    print(
        f"\n{d['instances']} servers, {d['volumes']} volumes, {d['segments']} segments, "
        f"{d['rollup_rows']} rollup rows; seeded in {d['seed_seconds']} s, rolled up in {d['rollup_seconds']} s"
    )
    m = d["machine"]
    print(f"{m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, SQLite {m['sqlite']}")
    print(f"met: {entry['met']}  ->  {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
