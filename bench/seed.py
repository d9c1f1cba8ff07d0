"""The benchmarks' data: one owner, a project of N servers beside a baseline project of a few,
each server with the history the portal would have written for it.

    seeded = seed(servers=1000, baseline=10, usage_days=45)

Every server runs in runs of 2-21 days with stops of 1-48 hours between them (8 % are stopped
now), from a launch 1 to `usage_days` days ago. It has the operations that did this
(create, then stop and start) and the usage segments they opened and closed: its disk for as long
as it exists, compute (and an image's licence) for each run. Daily rollups cover the complete days
and hourly rollups the last `hourly_days`, up to the current hour, as the rollup task leaves them.
Server i has the same history in every project (its random numbers come from its index), so the
baseline's servers are the big project's first ones.

Rows are generated in Python and loaded in bulk through each model field's own conversion
(`Field.get_db_prep_save`): COPY on PostgreSQL, executemany in one transaction on SQLite. Rollups
are computed from the loaded segments by one INSERT ... SELECT per granularity, each segment
joined to the periods it overlaps only, so the work grows with the history, not with history x
periods. The sizes are parameters for that reason: the same data at 10,000 or 100,000 servers
and a year of usage.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

BATCH = 5000
ZONES = ("fra1-a", "fra1-b", "ams1-a")  # available in the demo catalog, two regions
FLAVORS = ("s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb")
LAUNCH = ("fra1-a", "s-1vcpu-1gb", "Debian 13")  # zone, flavor, image of P3's launches


@dataclass
class Seeded:
    user: object
    big: object  # the project of `servers` servers
    small: object  # the baseline project
    spare: object  # an empty project (P3 launches into it)
    launch: tuple  # zone, flavor, image
    counts: dict = field(default_factory=dict)


def seed(
    *,
    servers: int = 1000,
    baseline: int = 10,
    usage_days: int = 45,
    hourly_days: int = 2,
    organizations: int = 10,
    rng_seed: int = 2026,
    now: datetime | None = None,
) -> Seeded:
    from django.conf import settings
    from django.utils import timezone

    from portal.catalog.demo import load_demo_catalog
    from portal.catalog.models import Flavor, Image, Zone
    from portal.compute.models import Instance, Operation
    from portal.metering.models import RollupCursor, UsageRollup, UsageSegment

    began = time.perf_counter()
    now = now or timezone.now()
    load_demo_catalog()
    user, projects = _tenants(organizations, quota=servers + baseline + 1000)
    big, small, spare = projects
    catalog = {
        "zones": [Zone.objects.get(code=code) for code in ZONES],
        "flavors": [Flavor.objects.get(code=code) for code in FLAVORS],
        "images": list(Image.objects.order_by("pk")),
        "disk_price": settings.PORTAL_DISK_PRICE_GIB_HOUR,
    }
    counts = {
        "servers": servers,
        "baseline": baseline,
        "usage_days": usage_days,
        "organizations": organizations,
    }
    for project, count in ((big, servers), (small, baseline)):
        histories = [_history(i, rng_seed, now, usage_days) for i in range(count)]
        load(Instance, _instances(project, user, catalog, histories))
        load(Operation, _operations(project, user, histories))
        load(UsageSegment, _segments(project, catalog, histories))
    rows_done = time.perf_counter()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    hour = now.replace(minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=usage_days + 1)
    roll_up("day", first_day, today)
    roll_up("hour", max(first_day, hour - timedelta(days=hourly_days)), hour)
    RollupCursor.objects.all().delete()
    RollupCursor.objects.create(next_hour=hour)
    counts |= {
        "instances": Instance.objects.count(),
        "operations": Operation.objects.count(),
        "segments": UsageSegment.objects.count(),
        "rollups": UsageRollup.objects.count(),
        "seconds_rows": round(rows_done - began, 1),
        "seconds_rollups": round(time.perf_counter() - rows_done, 1),
    }
    launch = (
        Zone.objects.get(code=LAUNCH[0]),
        Flavor.objects.get(code=LAUNCH[1]),
        Image.objects.get(name=LAUNCH[2]),
    )
    return Seeded(user=user, big=big, small=small, spare=spare, launch=launch, counts=counts)


def _tenants(organizations: int, quota: int):
    """The owner (e-mail confirmed) of `organizations` organizations of one project each; the first
    three projects are the big one, the baseline and the spare."""
    from allauth.account.models import EmailAddress

    from portal.accounts.models import User
    from portal.tenancy.models import Membership, Organization, Project, Role

    user = User.objects.create_user("bench@example.com", "bench-password-1")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    projects = []
    for n in range(max(organizations, 3)):
        org = Organization.objects.create(name=f"Org {n}", slug=f"org-{n}")
        Membership.objects.create(organization=org, user=user, role=Role.OWNER)
        project = Project(organization=org, name=f"Project {n}", slug="p")
        project.apply_default_quotas()
        project.quota_instances = project.quota_vcpus = project.quota_ram_gib = quota
        project.save()
        projects.append(project)
    return user, projects[:3]


@dataclass
class History:
    index: int
    id: uuid.UUID
    created: datetime
    runs: list[tuple[datetime, datetime | None]]  # compute runs; the last one open while running
    gone_at: datetime | None = None  # when it stopped, if it is stopped now

    @property
    def running(self) -> bool:
        return self.runs[-1][1] is None


def _history(index: int, rng_seed: int, now: datetime, usage_days: int) -> History:
    rng = random.Random(f"{rng_seed}:{index}")
    created = now - timedelta(days=rng.uniform(1, usage_days))
    start = created + timedelta(seconds=rng.uniform(20, 90))  # the boot
    runs: list[tuple[datetime, datetime | None]] = []
    while True:
        end = start + timedelta(days=rng.uniform(2, 21))
        if end >= now:
            runs.append((start, None))
            return History(index, uuid.uuid4(), created, runs)
        runs.append((start, end))
        start = end + timedelta(hours=rng.uniform(1, 48))
        if start >= now:
            return History(index, uuid.uuid4(), created, runs, end)


def _pick(options: list, index: int, salt: int):
    return options[(index * 7 + salt) % len(options)]


def _instances(project, user, catalog: dict, histories: list[History]) -> Iterator[dict]:
    from portal.compute.models import InstanceStatus

    for h in histories:
        flavor, image = _pick(catalog["flavors"], h.index, 1), _pick(catalog["images"], h.index, 3)
        yield {
            "id": h.id,
            "project_id": project.pk,
            "name": f"web-{h.index + 1}",
            "zone_id": _pick(catalog["zones"], h.index, 0).pk,
            "flavor_id": flavor.pk,
            "image_id": image.pk,
            "root_disk_gib": max(flavor.root_disk_gib, image.min_disk_gib),
            "status": InstanceStatus.RUNNING if h.running else InstanceStatus.STOPPED,
            "backend_id": f"sim-{h.id.hex[:12]}",
            "addresses": [f"100.64.{h.index // 250 % 256}.{h.index % 250 + 2}"],
            "created_by_id": user.pk,
            "created_at": h.created,
            "updated_at": h.runs[-1][0] if h.running else h.gone_at,
            "running_since": h.runs[-1][0] if h.running else None,
        }


def _operations(project, user, histories: list[History]) -> Iterator[dict]:
    """What made each history: a create, then a stop at the end of each run and a start after it."""
    from portal.compute.models import Action, OperationState

    for h in histories:
        steps = [(Action.CREATE, h.created, h.runs[0][0])]
        for (_, stopped), (started, _) in zip(h.runs, h.runs[1:], strict=False):
            steps += [(Action.STOP, stopped, stopped), (Action.START, started, started)]
        if h.gone_at:
            steps.append((Action.STOP, h.gone_at, h.gone_at))
        for action, requested, finished in steps:
            yield {
                "id": uuid.uuid4(),
                "instance_id": h.id,
                "action": action,
                "state": OperationState.SUCCEEDED,
                "requested_by_id": user.pk,
                "created_at": requested - timedelta(seconds=5),
                "finished_at": finished,
                "deadline": requested + timedelta(minutes=30),
            }


def _segments(project, catalog: dict, histories: list[History]) -> Iterator[dict]:
    from portal.metering.models import Meter, ResourceType

    for h in histories:
        flavor, image = _pick(catalog["flavors"], h.index, 1), _pick(catalog["images"], h.index, 3)
        common = {
            "organization_id": project.organization_id,
            "project_id": project.pk,
            "resource_type": ResourceType.INSTANCE,
            "resource_id": h.id,
            "resource_name": f"web-{h.index + 1}",
            "zone_id": _pick(catalog["zones"], h.index, 0).pk,
        }
        disk = max(flavor.root_disk_gib, image.min_disk_gib)
        yield common | _usage(Meter.DISK, disk, catalog["disk_price"], 0, 0, h.runs[0][0], None)
        for start, end in h.runs:
            yield common | _usage(
                Meter.COMPUTE, 1, flavor.price_hourly, flavor.vcpus, flavor.ram_gib, start, end
            )
            if image.license_price_hourly:
                yield common | _usage(Meter.LICENSE, 1, image.license_price_hourly, 0, 0, start, end)


def _usage(meter, quantity, price, vcpus, ram, start, end) -> dict:
    return {
        "meter": meter,
        "quantity": Decimal(quantity),
        "unit_price": price,
        "vcpus": vcpus,
        "ram_gib": ram,
        "started_at": start,
        "ended_at": end,
    }


def load(model, rows: Iterable[dict]) -> int:
    """Insert `rows` (dicts of field attnames; every row has the same keys) into `model`'s table.

    Fields a row leaves out take their default, converted once; an auto-incremented primary key
    left out is the database's to number."""
    from django.db import connection, transaction

    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0
    template = model(**first)  # the model's defaults for the fields the rows leave out
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.attname not in first)]
    given = [f.attname in first for f in fields]
    defaults = [
        None if g else f.get_db_prep_save(getattr(template, f.attname), connection)
        for f, g in zip(fields, given, strict=True)
    ]
    preps = [(f.attname, f.get_db_prep_save) for f in fields]

    def values(row: dict) -> list:
        return [
            prep(row[name], connection) if g else default
            for (name, prep), g, default in zip(preps, given, defaults, strict=True)
        ]

    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    count = 0
    # One transaction: in autocommit SQLite would commit (and sync) every row of an executemany.
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in _chain(first, rows):
                    copy.write_row(values(row))
                    count += 1
        else:
            marks = ", ".join(["%s"] * len(fields))
            sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 - names from the model
            batch = []
            for row in _chain(first, rows):
                batch.append(values(row))
                if len(batch) == BATCH:
                    cursor.executemany(sql, batch)
                    count, batch = count + len(batch), []
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


def _chain(first: dict, rest: Iterator[dict]) -> Iterator[dict]:
    yield first
    yield from rest


# Rollups as portal.metering.rollup computes them: per project x zone x meter and period, quantity,
# vCPUs, RAM and cost times the hours each segment overlaps the period. Each segment is joined to
# the periods it overlaps only (a series per segment), so the work grows with the history, not
# with history x periods. Hours are floats: the columns round them as the rollup task's do.
_ROLLUP = (
    "INSERT INTO metering_usagerollup (organization_id, project_id, zone_id, meter, granularity,"
    " period_start, quantity_hours, vcpu_hours, ram_gib_hours, cost) {periods}"
    " SELECT s.organization_id, s.project_id, s.zone_id, s.meter, %(granularity)s, b.start,"
    " SUM(s.quantity * {hours}), SUM(s.vcpus * {hours}), SUM(s.ram_gib * {hours}),"
    " SUM(s.quantity * s.unit_price * {hours})"
    " FROM {joined} GROUP BY s.organization_id, s.project_id, s.zone_id, s.meter, b.start"
)
_DIALECTS = {
    "postgresql": {
        "periods": "",
        "joined": "metering_usagesegment s CROSS JOIN LATERAL generate_series("
        "date_trunc(%(unit)s, GREATEST(s.started_at, %(first)s)),"
        " LEAST(COALESCE(s.ended_at, %(last)s), %(last)s) - interval '1 microsecond', %(step)s) AS b(start)"
        " CROSS JOIN LATERAL (SELECT b.start + %(step)s AS stop) AS e"
        " WHERE s.started_at < %(last)s AND (s.ended_at IS NULL OR s.ended_at > %(first)s)",
        "hours": "(EXTRACT(EPOCH FROM LEAST(COALESCE(s.ended_at, e.stop), e.stop)"
        " - GREATEST(s.started_at, b.start))::float8 / 3600)",
    },
    "sqlite": {
        "periods": "WITH RECURSIVE b(segment, start, stop) AS ("
        " SELECT s.id, strftime(%(trunc)s, max(s.started_at, %(first)s)),"
        " datetime(strftime(%(trunc)s, max(s.started_at, %(first)s)), %(step)s)"
        " FROM metering_usagesegment s"
        " WHERE s.started_at < %(last)s AND (s.ended_at IS NULL OR s.ended_at > %(first)s)"
        " UNION ALL SELECT b.segment, b.stop, datetime(b.stop, %(step)s)"
        " FROM b JOIN metering_usagesegment s ON s.id = b.segment"
        " WHERE b.stop < min(coalesce(s.ended_at, %(last)s), %(last)s))",
        "joined": "b JOIN metering_usagesegment s ON s.id = b.segment",
        "hours": "((julianday(min(coalesce(s.ended_at, b.stop), b.stop))"
        " - julianday(max(s.started_at, b.start))) * 24)",
    },
}


def roll_up(granularity: str, first: datetime, last: datetime) -> None:
    """Rollups of `granularity` ("hour" or "day") for the complete periods in [first, last)."""
    from django.db import connection

    if first >= last:
        return
    dialect = _DIALECTS[connection.vendor]
    sql = _ROLLUP.format(periods=dialect["periods"], joined=dialect["joined"], hours=dialect["hours"])
    if connection.vendor == "postgresql":
        step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
        params = {"unit": granularity, "first": first, "last": last, "step": step}
    else:
        trunc = "%Y-%m-%d %H:00:00" if granularity == "hour" else "%Y-%m-%d 00:00:00"
        step = "+1 hour" if granularity == "hour" else "+1 day"
        params = {"trunc": trunc, "first": _sqlite_time(first), "last": _sqlite_time(last), "step": step}
    with connection.cursor() as cursor:
        cursor.execute(sql, params | {"granularity": granularity})


def _sqlite_time(moment: datetime) -> str:
    """As Django's SQLite backend stores an aware datetime: naive UTC text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
