"""What decides whether a snapshot or a backup can be taken now, and what keeping one costs: read
by the services, the beat task that takes backups, the pages and the API (one answer, one wording).
Imports no task, so that the beat task can use it."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from portal.catalog.models import Zone
from portal.compute.backends import BackendError, Capability, get_backend, not_available
from portal.compute.models import Instance, InstanceStatus, Snapshot, SnapshotStatus, Volume, VolumeStatus
from portal.compute.models.snapshots import KEEP_MAX, BackupFrequency
from portal.compute.pricing import monthly
from portal.compute.problems import Problem

S = InstanceStatus
SS = SnapshotStatus


def capability_refusal(zone: Zone, capability: Capability) -> str:
    """Why `zone` cannot do `capability` ("Server snapshots are not available in ams1-b."), or ""."""
    try:
        capabilities = get_backend(zone.backend).capabilities(zone.code)
    except BackendError as error:
        return error.user_message
    return "" if capability in capabilities else not_available(capability, zone.code).user_message


def capability_refusals(zone: Zone, *capabilities: Capability) -> dict[Capability, str]:
    """`capability_refusal` for several, asking the zone's backend once."""
    try:
        found = get_backend(zone.backend).capabilities(zone.code)
    except BackendError as error:
        return dict.fromkeys(capabilities, error.user_message)
    return {c: "" if c in found else not_available(c, zone.code).user_message for c in capabilities}


SNAPSHOT_NAME_MAX_LENGTH = 63
S = InstanceStatus
SS = SnapshotStatus
# What a server is doing that keeps a snapshot from being taken, in the customer's words.
SERVER_BUSY = {
    S.PENDING: "still being created",
    S.PROVISIONING: "still being created",
    S.STOPPING: "stopping",
    S.STARTING: "starting",
    S.REBOOTING: "rebooting",
    S.RESIZING: "being resized",
    S.REBUILDING: "having its disk restored",
    S.RESCUING: "entering rescue mode",
    S.RESCUE: "in rescue mode",
    S.UNRESCUING: "leaving rescue mode",
    S.TERMINATING: "being terminated",
    S.TERMINATED: "terminated",
}
SNAPSHOTTABLE_SERVER = frozenset({S.RUNNING, S.STOPPED})
SNAPSHOTTABLE_VOLUME = frozenset({VolumeStatus.AVAILABLE, VolumeStatus.IN_USE})


def snapshot_price_monthly(size_gib: int) -> Decimal:
    """What keeping a snapshot of `size_gib` costs per month (the '+0.80 EUR/month' shown)."""
    return monthly(Decimal(size_gib) * settings.PORTAL_SNAPSHOT_PRICE_GIB_HOUR)


def default_snapshot_name(source_name: str, now=None) -> str:
    return f"{source_name[:46]}-{(now or timezone.now()):%Y%m%d-%H%M}"


def server_snapshot_problems(instance: Instance) -> list[Problem]:
    """Why a snapshot of `instance` can't be taken now (every reason), [] when it can."""
    problems = []
    if refusal := capability_refusal(instance.zone, Capability.SERVER_SNAPSHOTS):
        problems.append(Problem(None, refusal, 409))
    taking = Snapshot.objects.filter(source_instance=instance, status=SS.CREATING).exists()
    return problems + server_snapshot_state_problems(instance, taking=taking)


def server_snapshot_state_problems(instance: Instance, *, taking: bool) -> list[Problem]:
    """What the server is doing that refuses a snapshot (`taking`: one is being taken now)."""
    problems = []
    if instance.status in SERVER_BUSY:
        problems.append(
            Problem(
                None, f"{instance.name} is {SERVER_BUSY[instance.status]}: it can't be snapshotted now.", 409
            )
        )
    elif instance.status not in SNAPSHOTTABLE_SERVER:
        problems.append(
            Problem(None, f"{instance.name} is in error ({instance.fault_message or 'see its page'}).", 409)
        )
    elif taking:
        problems.append(
            Problem(None, f"A snapshot of {instance.name} is being taken: wait until it is done.", 409)
        )
    return problems


def volume_snapshot_problems(volume: Volume) -> list[Problem]:
    problems = []
    if refusal := capability_refusal(volume.zone, Capability.VOLUME_SNAPSHOTS):
        problems.append(Problem(None, refusal, 409))
    if volume.status not in SNAPSHOTTABLE_VOLUME:
        problems.append(
            Problem(
                None,
                f"{volume.name} is {volume.get_status_display().lower()}: it can't be snapshotted now.",
                409,
            )
        )
    elif Snapshot.objects.filter(source_volume=volume, status=SS.CREATING).exists():
        problems.append(
            Problem(None, f"A snapshot of {volume.name} is being taken: wait until it is done.", 409)
        )
    return problems


def backup_schedule_problems(
    instance: Instance, *, frequency, hour, weekday, keep, enabled: bool
) -> list[Problem]:
    """Every rule a backup schedule breaks, at once. None: not given (or not a number)."""
    problems = []
    if frequency not in BackupFrequency.values:
        problems.append(Problem("frequency", "Choose daily or weekly backups."))
    if hour is None or not 0 <= hour <= 23:
        problems.append(Problem("hour", "Choose an hour from 0 to 23 (UTC)."))
    if frequency == BackupFrequency.WEEKLY and weekday is None:
        problems.append(Problem("weekday", "Choose the day of the week for weekly backups."))
    elif weekday is not None and not 0 <= weekday <= 6:
        problems.append(Problem("weekday", "Choose a day from Monday to Sunday."))
    if keep is None or keep < 1:
        problems.append(Problem("keep", "Keep at least 1 backup; to stop taking backups, turn them off."))
    elif keep > KEEP_MAX:
        problems.append(Problem("keep", f"At most {KEEP_MAX} backups are kept."))
    if instance.status in (S.TERMINATING, S.TERMINATED):
        problems.append(Problem(None, f"{instance.name} is {SERVER_BUSY[instance.status]}.", 409))
    elif enabled and (refusal := capability_refusal(instance.zone, Capability.SERVER_SNAPSHOTS)):
        problems.append(Problem(None, f"Backups need server snapshots. {refusal}", 409))
    return problems
