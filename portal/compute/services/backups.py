"""A server's backup schedule: daily or weekly at an hour (UTC), the newest `keep` kept. The beat
task that takes the backups is `portal.compute.backups`."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from portal.audit.models import AuditAction
from portal.compute.models import BackupFrequency, BackupSchedule, Instance
from portal.compute.services.common import ComputeRefused, audit, lock_project
from portal.compute.snapshot_rules import backup_schedule_problems
from portal.tenancy.access import Access, Perm


def backup_schedule_set(
    *,
    access: Access,
    instance: Instance,
    frequency: str | None,
    hour: int | None,
    weekday: int | None = None,
    keep: int | None,
    enabled: bool = True,
    request: HttpRequest | None = None,
) -> BackupSchedule:
    """Create or change the schedule of `instance`. Raises ComputeRefused listing every problem
    (keep 0, an hour out of range, weekly without a day…); a refused change changes nothing."""
    access.require(Perm.RESOURCE_OPERATE)
    if instance.project_id != access.project.pk:
        raise ComputeRefused("Choose a server of this project.", status=404)
    with transaction.atomic():
        lock_project(access)
        instance = Instance.objects.select_for_update().select_related("zone").get(pk=instance.pk)
        problems = backup_schedule_problems(
            instance, frequency=frequency, hour=hour, weekday=weekday, keep=keep, enabled=enabled
        )
        if problems:
            raise ComputeRefused.of(problems)
        schedule = BackupSchedule.objects.filter(instance=instance).first() or BackupSchedule(
            instance=instance
        )
        before = None if schedule.pk is None else schedule.summary if schedule.enabled else "off"
        schedule.frequency, schedule.hour, schedule.keep, schedule.enabled = frequency, hour, keep, enabled
        schedule.weekday = weekday if frequency == BackupFrequency.WEEKLY else None
        schedule.next_run_at = schedule.next_after(timezone.now()) if enabled else None
        schedule.updated_by = access.membership.user
        schedule.save()
        after = schedule.summary if enabled else "off"
        if before != after:
            audit(access, AuditAction.BACKUP_SCHEDULE_SET, instance, {"backups": [before, after]}, request)
        return schedule
