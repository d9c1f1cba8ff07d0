"""A month of usage history for a demo project, so that a fresh `make run` shows graphs and costs.

The servers are past ones (their segments closed an hour ago; no Instance rows), billed at the
demo catalog's prices, then rolled up like the beat task would.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.catalog.models import Flavor, Image, Zone
from portal.metering.models import Granularity, Meter, ResourceType, UsageSegment
from portal.metering.rollup import floor_day, floor_hour, rollup_period
from portal.metering.segments import segment_row

DAYS = 30


@dataclass(frozen=True)
class DemoServer:
    name: str
    flavor: str
    disk_gib: int
    first_day: int  # days before now it was created
    last_day: int = 0  # days before now it was terminated (0: an hour ago)
    image: str = "Debian 13"
    office_hours: bool = False  # runs 08:00-20:00 UTC on weekdays, stopped otherwise


SERVERS = [
    DemoServer("web-1", "s-2vcpu-4gb", 80, first_day=DAYS),
    DemoServer("web-2", "s-2vcpu-4gb", 80, first_day=18),
    DemoServer("db-1", "m-8vcpu-64gb", 400, first_day=DAYS),
    DemoServer("batch", "c-8vcpu-16gb", 200, first_day=DAYS, office_hours=True),
    DemoServer("win-build", "s-4vcpu-8gb", 80, first_day=25, last_day=20, image="Windows Server 2025"),
    DemoServer("load-test", "c-16vcpu-32gb", 400, first_day=10, last_day=8),
]
VOLUMES = [("db-data", 200, DAYS)]


@transaction.atomic
def load_demo_usage(project, *, zone_code: str = "fra1-a", now: datetime | None = None) -> int:
    """Segments for a handful of past servers over the last 30 days, rolled up. Does nothing
    when the project already has usage. Returns the number of segments written."""
    if UsageSegment.objects.filter(project=project).exists():
        return 0
    now = now or timezone.now()
    end = floor_hour(now) - timedelta(hours=1)
    zone = Zone.objects.get(code=zone_code)
    segments: list[UsageSegment] = []

    def add(resource, name, kind, meter, quantity, price, start, stop, vcpus=0, ram=0) -> None:
        segments.append(
            segment_row(
                project=project,
                zone=zone,
                resource_type=kind,
                resource_id=resource,
                name=name,
                meter=meter,
                quantity=quantity,
                unit_price=price,
                start=start,
                end=stop,
                vcpus=vcpus,
                ram_gib=ram,
            )
        )

    for server in SERVERS:
        flavor = Flavor.objects.get(code=server.flavor)
        image = Image.objects.get(name=server.image)
        resource = uuid.uuid5(uuid.NAMESPACE_URL, f"demo-usage/{project.pk}/{server.name}")
        start = floor_hour(now - timedelta(days=server.first_day)) + timedelta(minutes=17)
        stop = end
        if server.last_day:
            stop = floor_hour(now - timedelta(days=server.last_day)) + timedelta(minutes=42)
        server_segment = functools.partial(add, resource, server.name, ResourceType.INSTANCE)
        server_segment(Meter.DISK, server.disk_gib, settings.PORTAL_DISK_PRICE_GIB_HOUR, start, stop)
        for run_start, run_stop in _runs(server, start, stop):
            server_segment(
                Meter.COMPUTE, 1, flavor.price_hourly, run_start, run_stop, flavor.vcpus, flavor.ram_gib
            )
            if image.license_price_hourly:
                server_segment(Meter.LICENSE, 1, image.license_price_hourly, run_start, run_stop)
    for name, size, first_day in VOLUMES:
        resource = uuid.uuid5(uuid.NAMESPACE_URL, f"demo-usage/{project.pk}/{name}")
        start = floor_hour(now - timedelta(days=first_day)) + timedelta(minutes=20)
        price = settings.PORTAL_VOLUME_PRICE_GIB_HOUR
        add(resource, name, ResourceType.VOLUME, Meter.VOLUME, size, price, start, end)
    UsageSegment.objects.bulk_create(segments)
    first = floor_day(min(s.started_at for s in segments))
    rollup_period(first, floor_hour(now), Granularity.HOUR, now)
    rollup_period(first, floor_day(now), Granularity.DAY, now)
    return len(segments)


def _runs(server: DemoServer, start: datetime, stop: datetime) -> list[tuple[datetime, datetime]]:
    """When the server was running: all along, or office hours on weekdays."""
    if not server.office_hours:
        return [(start, stop)]
    runs = []
    day = floor_day(start)
    while day < stop:
        if day.weekday() < 5:
            run_start, run_stop = max(day + timedelta(hours=8), start), min(day + timedelta(hours=20), stop)
            if run_start < run_stop:
                runs.append((run_start, run_stop))
        day += timedelta(days=1)
    return runs
