"""Volumes chosen with a launch: new ones (a name and a size, one set per server) and, for a single
server, existing volumes of the project in the same zone. The rules are here, shared by the wizard
and the API; `instance_launch` calls them, creates the new volumes through their own operation
(compute/operations/volumes.py) and reserves the existing ones. Both are attached once they and the
server are ready (compute/operations/launch_volumes.py), each attach an operation of its own: a
volume that fails leaves the server as it is, and the server's page shows it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.http import HttpRequest

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.catalog.models import Zone
from portal.compute.models import Action, Instance, Operation, Volume, VolumeStatus
from portal.compute.models.operations import operation_deadline
from portal.compute.problems import Problem
from portal.compute.services.common import ComputeRefused
from portal.compute.services.volumes import (
    VOLUME_MAX_GIB,
    VOLUME_MIN_GIB,
    VOLUME_NAME_MAX_LENGTH,
    VOLUME_NAME_RE,
    volumes_per_server,
    zone_refusal,
)

NEW, EXISTING = "new_volumes", "existing_volumes"


@dataclass(frozen=True)
class NewVolume:
    """A volume to create with each server: server “web-1” and name “data” make “web-1-data”."""

    name: str
    size_gib: int


def launch_volume_name(server_name: str, volume: NewVolume) -> str:
    return f"{server_name}-{volume.name}"


def launch_volumes_hourly(new_volumes: Sequence[NewVolume], count: int) -> Decimal:
    """What the new volumes of a launch cost per hour, at the catalog's volume price (existing
    volumes are billed already)."""
    return Decimal(count * sum(v.size_gib for v in new_volumes)) * settings.PORTAL_VOLUME_PRICE_GIB_HOUR


def launch_volumes_gib(new_volumes: Sequence[NewVolume], count: int) -> int:
    return count * sum(v.size_gib for v in new_volumes)


def _existing_problems(volume: Volume, zone: Zone | None) -> list[Problem]:
    label = f"Volume {volume.name}"
    problems = []
    if zone is not None and volume.zone_id != zone.pk:
        problems.append(
            Problem(
                EXISTING,
                f"{label} is in {volume.zone.code}, not {zone.code}: a server can only use volumes "
                "of its own zone.",
                409,
            )
        )
    if volume.attached_to_id is not None:
        problems.append(
            Problem(EXISTING, f"{label} is attached to {volume.attached_to.name}: detach it first.", 409)
        )
    elif volume.pending_server_id is not None:
        problems.append(
            Problem(EXISTING, f"{label} is to be attached to {volume.pending_server.name} once it runs.", 409)
        )
    elif volume.status != VolumeStatus.AVAILABLE:
        problems.append(
            Problem(EXISTING, f"{label} is {volume.get_status_display().lower()}: it can't be attached.", 409)
        )
    return problems


def launch_volume_problems(
    project,
    *,
    server_names: Sequence[str] | None,
    count: int | None,
    zone: Zone | None,
    new_volumes: Sequence[NewVolume] = (),
    existing_volumes: Sequence[Volume] = (),
) -> list[Problem]:
    """Every broken rule of a launch's volumes, each a Problem, all at once. `server_names` (None
    when the name or count is not usable) gives the new volumes' full names."""
    if not new_volumes and not existing_volumes:
        return []
    problems: list[Problem] = []
    field = NEW if new_volumes else EXISTING
    if zone is not None and zone.region.is_active and (refusal := zone_refusal(zone)):
        problems.append(Problem(field, f"{refusal} Launch without volumes, or choose another zone.", 409))
    seen = set()
    for i, volume in enumerate(new_volumes, 1):
        if not VOLUME_NAME_RE.match(volume.name):
            problems.append(
                Problem(
                    NEW,
                    f"New volume {i}: use lower-case letters, digits and hyphens (not at the start or end).",
                )
            )
        elif volume.name in seen:
            problems.append(
                Problem(NEW, f"New volume {i}: “{volume.name}” is given twice; name each volume once.")
            )
        seen.add(volume.name)
        if not VOLUME_MIN_GIB <= volume.size_gib <= VOLUME_MAX_GIB:
            problems.append(
                Problem(NEW, f"New volume {i}: a volume is {VOLUME_MIN_GIB} to {VOLUME_MAX_GIB} GiB.")
            )
    if existing_volumes and count is not None and count > 1:
        problems.append(
            Problem(
                EXISTING,
                "Existing volumes can only be attached to a single server: launch one, or add new "
                "volumes (each server gets its own set).",
            )
        )
    for volume in existing_volumes:
        if volume.project_id != project.pk:
            problems.append(Problem(EXISTING, "Choose volumes of this project.", 404))
        else:
            problems.extend(_existing_problems(volume, zone))
    limit = volumes_per_server()
    if len(new_volumes) + len(existing_volumes) > limit:
        problems.append(Problem(field, f"A server takes at most {limit} volumes; choose fewer."))
    names = [
        launch_volume_name(server, volume)
        for server in server_names or ()
        for volume in new_volumes
        if VOLUME_NAME_RE.match(volume.name)
    ]
    if any(len(name) > VOLUME_NAME_MAX_LENGTH for name in names):
        problems.append(
            Problem(
                NEW,
                f"A new volume is named after its server (“{names[-1][:40]}…”): at most "
                f"{VOLUME_NAME_MAX_LENGTH} characters. Shorten the server's or the volume's name.",
            )
        )
    elif names:
        taken = sorted(
            Volume.objects.existing().filter(project=project, name__in=names).values_list("name", flat=True)
        )
        if taken:
            problems.append(
                Problem(
                    NEW,
                    f"The project already has a volume named {', '.join(taken[:3])}: choose another name.",
                    409,
                )
            )
    return problems


def launch_volumes_create(
    *,
    project,
    instances: list[Instance],
    new_volumes: Sequence[NewVolume],
    existing_volumes: Sequence[Volume],
    user,
    request: HttpRequest | None = None,
) -> list[Operation]:
    """Inside the launch's transaction (project locked, quota checked): the new volumes' rows and
    their creation, and the existing ones reserved for the server. Raises ComputeRefused if an
    existing volume changed meanwhile; the launch then makes nothing. Returns the operations."""
    if existing_volumes:
        locked = list(
            Volume.objects.existing()
            .select_for_update(of=("self",))
            .select_related("zone", "attached_to", "pending_server")
            .filter(project=project, pk__in=[v.pk for v in existing_volumes])
        )
        problems = [p for v in locked for p in _existing_problems(v, instances[0].zone)]
        if len(locked) != len(existing_volumes):
            problems.append(Problem(EXISTING, "A chosen volume has been deleted meanwhile.", 409))
        if problems:
            raise ComputeRefused.of(problems)
        Volume.objects.filter(pk__in=[v.pk for v in locked]).update(pending_server=instances[0])
    volumes = Volume.objects.bulk_create(
        Volume(
            project=project,
            name=launch_volume_name(instance.name, volume),
            zone=instance.zone,
            size_gib=volume.size_gib,
            status=VolumeStatus.CREATING,
            pending_server=instance,
            created_by=user,
        )
        for instance in instances
        for volume in new_volumes
    )
    deadline = operation_deadline()
    operations = Operation.objects.bulk_create(
        Operation(
            volume=volume,
            action=Action.VOLUME_CREATE,
            params={"launch_server": str(volume.pending_server_id)},
            requested_by=user,
            deadline=deadline,
            step_token=uuid.uuid4().hex,
        )
        for volume in volumes
    )
    servers = {instance.pk: instance.name for instance in instances}
    for volume in volumes:
        audit_record(
            action=AuditAction.VOLUME_CREATED,
            organization=project.organization,
            project=project,
            target=volume,
            changes={
                "size": [None, f"{volume.size_gib} GiB"],
                "zone": [None, volume.zone.code],
                "server": [None, servers[volume.pending_server_id]],
            },
            actor=user,
            request=request,
        )
    return operations
