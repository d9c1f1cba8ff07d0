"""Open and close usage segments so that they match what a resource is doing now.

`sync_instance(instance)` is called, inside the same transaction, wherever an instance's status
or size changes; it compares the open segments with what should be billed in that status at the
catalog's current prices and closes or opens the difference. Calling it twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from portal.metering.models import Meter, ResourceType, UsageSegment

# What a server pays for in each status. A stopped server still pays for its disk; one in rescue
# mode (and entering or leaving it) runs, and pays as it does.
RUNNING_LIKE = {"running", "rebooting", "stopping", "rescuing", "rescue", "unrescuing"}
EXISTING = RUNNING_LIKE | {"stopped", "starting", "resizing", "rebuilding", "terminating"}


@dataclass(frozen=True)
class Wanted:
    meter: str
    quantity: Decimal
    unit_price: Decimal
    vcpus: int = 0
    ram_gib: int = 0


def wanted_for_instance(instance) -> list[Wanted]:
    status = instance.status
    wanted = []
    if status in RUNNING_LIKE:
        flavor = instance.flavor
        wanted.append(Wanted(Meter.COMPUTE, Decimal(1), flavor.price_hourly, flavor.vcpus, flavor.ram_gib))
        if instance.image.license_price_hourly:
            wanted.append(Wanted(Meter.LICENSE, Decimal(1), instance.image.license_price_hourly))
    if status in EXISTING:
        wanted.append(
            Wanted(Meter.DISK, Decimal(instance.root_disk_gib), settings.PORTAL_DISK_PRICE_GIB_HOUR)
        )
    return wanted


# A volume is billed while it exists in the cloud: from the cloud's confirmation that it was made
# until its confirmation that it is gone (not while being created, nor after a failure).
VOLUME_EXISTING = {"available", "attaching", "in_use", "detaching", "extending", "deleting"}


def wanted_for_volume(volume) -> list[Wanted]:
    if volume.status not in VOLUME_EXISTING:
        return []
    return [Wanted(Meter.VOLUME, Decimal(volume.size_gib), settings.PORTAL_VOLUME_PRICE_GIB_HOUR)]


# A snapshot (or backup, or the custom image it is) is billed while it exists in the cloud: from the
# cloud's "available" until its confirmation that it is gone.
SNAPSHOT_EXISTING = {"available", "deleting"}


def wanted_for_snapshot(snapshot) -> list[Wanted]:
    if snapshot.status not in SNAPSHOT_EXISTING or not snapshot.size_gib:
        return []
    return [Wanted(Meter.SNAPSHOT, Decimal(snapshot.size_gib), settings.PORTAL_SNAPSHOT_PRICE_GIB_HOUR)]


def _key(w) -> tuple:
    return (w.meter, Decimal(w.quantity).normalize(), Decimal(w.unit_price).normalize(), w.vcpus, w.ram_gib)


@dataclass(frozen=True)
class _Resource:
    resource_type: str
    resource: object
    project: object
    zone_id: int
    wanted: list[Wanted]


def _sync_all(resources: list[_Resource], at=None) -> None:
    """Bring the open segments of several resources in line: three statements however many."""
    if not resources:
        return
    at = at or timezone.now()
    have_by_resource: dict = {r.resource.pk: {} for r in resources}
    for segment in UsageSegment.objects.filter(resource_id__in=list(have_by_resource), ended_at__isnull=True):
        have_by_resource[segment.resource_id][_key(segment)] = segment
    stale, new = [], []
    for r in resources:
        want = {_key(w): w for w in r.wanted}
        have = have_by_resource[r.resource.pk]
        stale += [s.pk for k, s in have.items() if k not in want]
        new += [
            UsageSegment(
                organization_id=r.project.organization_id,
                project_id=r.project.pk,
                resource_type=r.resource_type,
                resource_id=r.resource.pk,
                resource_name=r.resource.name,
                zone_id=r.zone_id,
                meter=w.meter,
                quantity=w.quantity,
                unit_price=w.unit_price,
                vcpus=w.vcpus,
                ram_gib=w.ram_gib,
                started_at=at,
            )
            for k, w in want.items()
            if k not in have
        ]
    if stale:
        UsageSegment.objects.filter(pk__in=stale).update(ended_at=at)
    if new:
        UsageSegment.objects.bulk_create(new)


def _instance(instance) -> _Resource:
    return _Resource(
        ResourceType.INSTANCE, instance, instance.project, instance.zone_id, wanted_for_instance(instance)
    )


def sync_instance(instance, at=None) -> None:
    _sync_all([_instance(instance)], at)


def sync_instances(instances, at=None) -> None:
    """`sync_instance` for many (e.g. the servers of one launch), in a fixed number of statements."""
    _sync_all([_instance(instance) for instance in instances], at)


def sync_volume(volume, at=None) -> None:
    sync_volumes([volume], at)


def sync_volumes(volumes, at=None) -> None:
    """`sync_volume` for many, in a fixed number of statements."""
    _sync_all(
        [
            _Resource(ResourceType.VOLUME, volume, volume.project, volume.zone_id, wanted_for_volume(volume))
            for volume in volumes
        ],
        at,
    )


def sync_snapshots(snapshots, at=None) -> None:
    """Bring the billing of snapshots in line with their status, in a fixed number of statements."""
    _sync_all(
        [
            _Resource(
                ResourceType.SNAPSHOT,
                snapshot,
                snapshot.project,
                snapshot.zone_id,
                wanted_for_snapshot(snapshot),
            )
            for snapshot in snapshots
        ],
        at,
    )


def reprice(*, flavor=None, image=None, at=None) -> int:
    """After an operator changes a price: close open segments at the old price, open at the new.

    Usage before the change keeps its old price; usage after it is billed at the new one.
    """
    from portal.compute.models import Instance

    instances = Instance.objects.filter(status__in=EXISTING).select_related("flavor", "image", "project")
    if flavor is not None:
        instances = instances.filter(flavor=flavor)
    if image is not None:
        instances = instances.filter(image=image)
    count = 0
    for instance in instances:
        sync_instance(instance, at=at)
        count += 1
    return count


def segment_row(
    *,
    project,
    zone,
    resource_type,
    resource_id,
    name,
    meter,
    quantity,
    unit_price,
    start,
    end,
    vcpus=0,
    ram_gib=0,
) -> UsageSegment:
    """An unsaved segment, for code that writes history in bulk (demo data, benchmarks)."""
    return UsageSegment(
        organization_id=project.organization_id,
        project=project,
        resource_type=resource_type,
        resource_id=resource_id,
        resource_name=name,
        zone=zone,
        meter=meter,
        quantity=Decimal(quantity),
        unit_price=unit_price,
        vcpus=vcpus,
        ram_gib=ram_gib,
        started_at=start,
        ended_at=end,
    )
