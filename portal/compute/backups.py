"""Scheduled backups: the beat task's side of `BackupSchedule` (the customer's side is
`services.backups.backup_schedule_set`).

`backups_run_due` claims each due schedule by moving its `next_run_at` forward with a conditional
UPDATE (`next_run_at` still what was read): of two beats or workers only one moves it, and only that
one records the backup — the claim, the `Snapshot` row and its operation commit together, so a
worker killed before the commit leaves the schedule due and the next run takes it. The cloud is
called by the operation pipeline, where the Snapshot's UUID is the idempotency key: a step repeated
after a worker died adopts the snapshot the first one made. Imports no task (the task imports it).
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.utils import timezone

from portal.compute import notify
from portal.compute.models import (
    Action,
    BackupSchedule,
    InstanceStatus,
    Operation,
    Snapshot,
    SnapshotKind,
    SnapshotStatus,
)
from portal.compute.models.operations import operation_deadline
from portal.compute.problems import Problem
from portal.compute.snapshot_rules import server_snapshot_problems
from portal.residency.placement import placement_decision

log = logging.getLogger(__name__)
BATCH = 200


def backup_name(instance, now) -> str:
    return f"{instance.name[:44]}-backup-{now:%Y%m%d-%H%M}"


def _take(schedule: BackupSchedule, now) -> Operation | None:
    """Inside the claim's transaction: the backup's row and its operation, or (the server can't be
    snapshotted now, or the residency policy no longer allows its zone) the backup recorded as
    failed, with the owners' e-mail. A backup is a placement in the server's zone: the policy is
    read with its rows locked, as every placement does. The schedule stays on (a widened policy
    lets the next one through); nothing is placed meanwhile."""
    instance = schedule.instance
    if instance.status == InstanceStatus.TERMINATED:
        BackupSchedule.objects.filter(pk=schedule.pk).update(enabled=False, next_run_at=None)
        return None
    decision = placement_decision(instance.project, instance.zone, lock=True)
    refusal = f"{decision.reason} A backup stays in the server's zone, so none is taken there."
    problems = [] if decision.allowed else [Problem(None, refusal, 403)]
    problems += server_snapshot_problems(instance)
    snapshot = Snapshot.objects.create(
        project=instance.project,
        zone=instance.zone,
        name=backup_name(instance, now),
        kind=SnapshotKind.BACKUP,
        source_instance=instance,
        schedule=schedule,
        status=SnapshotStatus.ERROR if problems else SnapshotStatus.CREATING,
        fault_message=" ".join(p.message for p in problems)[:500],
    )
    if problems:
        notify.backup_failed(snapshot, snapshot.fault_message)
        return None
    return Operation.objects.create(
        snapshot=snapshot,
        action=Action.SNAPSHOT_CREATE,
        deadline=operation_deadline(),
        step_token=uuid.uuid4().hex,
    )


def backups_run_due(now=None) -> list[tuple]:
    """Take the backups that are due; `(operation id, step token, backend)` of each operation
    made, for the caller to send once committed (the reconciler sends any it did not)."""
    now = now or timezone.now()
    due = list(
        BackupSchedule.objects.filter(enabled=True, next_run_at__lte=now)
        .order_by("next_run_at")
        .values_list("pk", "next_run_at")[:BATCH]
    )
    steps = []
    for pk, seen in due:
        with transaction.atomic():
            schedule = (
                BackupSchedule.objects.select_related("instance__project", "instance__zone")
                .filter(pk=pk)
                .first()
            )
            if schedule is None:
                continue
            claimed = BackupSchedule.objects.filter(pk=pk, enabled=True, next_run_at=seen).update(
                next_run_at=schedule.next_after(now)
            )
            if not claimed:
                continue  # another run took this one
            op = _take(schedule, now)
        if op is not None:
            steps.append((op.pk, op.step_token, schedule.instance.zone.backend))
    if steps:
        log.info("backups taken", extra={"count": len(steps)})
    return steps
