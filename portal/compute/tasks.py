from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from portal.compute import backups, reconciler, runner
from portal.compute.crashpoints import CrashPoint, crash_point
from portal.compute.models import ConsoleSession

log = logging.getLogger(__name__)

# Steps due at once that one message runs before handing the rest back to the queue.
INLINE_STEPS = 3


def operations_enqueue(operations) -> None:
    """Send the next step of these operations (`(id, step token, backend name)`), grouped into
    messages as their backends take them. Call it after the commit (`transaction.on_commit`)."""
    for steps in runner.step_messages(operations):
        operations_advance.delay(steps)


@shared_task(
    acks_late=True,  # safe: every step is idempotent (see runner)
    reject_on_worker_lost=True,  # a killed worker's message goes back on the queue
    time_limit=120,
    soft_time_limit=90,
    ignore_result=True,
)
def operations_advance(steps: list[list[str]]) -> None:
    """One step of several operations (`[operation id, token]` pairs), then the next checks: the
    operations due at the same moment travel in one message, and those due at once (a cloud that
    answers immediately) are stepped here, a few times at most."""
    for _ in range(INLINE_STEPS):
        following = defaultdict(list)
        for operation_id, step in runner.advance(steps).items():
            if not step.done:
                following[step.again_in].append([operation_id, step.token])
        crash_point(CrashPoint.BEFORE_NEXT_CHECK)
        steps = following.pop(0, [])
        for again_in, group in following.items():
            operations_advance.apply_async((group,), countdown=again_in)
        if not steps:
            return
    operations_advance.apply_async((steps,), countdown=0)


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240, ignore_result=True)
def reconcile() -> None:
    """Periodic (celery beat): re-enqueue lost work, fail stuck operations, fix drift, flag orphans."""
    report = reconciler.reconcile()
    try:
        operations_enqueue(report.lost)
    except Exception:  # broker unreachable: release the claims, so that the next run sends them
        reconciler.release(report.lost)
        log.warning("reconcile: broker unreachable, requeue postponed", exc_info=True)


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240, ignore_result=True)
def backups_run_due() -> None:
    """Periodic (celery beat): take the scheduled backups that are due. Safe to run twice at once
    (each schedule is claimed by one run); a backup whose first message is not sent here is sent
    by the reconciler."""
    operations_enqueue(backups.backups_run_due())


@shared_task(time_limit=120, soft_time_limit=100, ignore_result=True)
def console_tickets_purge() -> int:
    """Hourly: console tickets that expired unused (settings.CONSOLE_TICKET_KEEP_HOURS)."""
    deleted = ConsoleSession.delete_expired_unused(timedelta(hours=settings.CONSOLE_TICKET_KEEP_HOURS))
    if deleted:
        log.info("deleted %d console tickets that expired unused", deleted)
    return deleted
