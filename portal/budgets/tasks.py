"""Beat tasks (settings.CELERY_BEAT_SCHEDULE). Each is idempotent: the rows they claim make a
second run, or a second worker, send and stop nothing twice."""

from __future__ import annotations

from celery import shared_task

from portal.budgets import alerts, leases, nudges


@shared_task(time_limit=300, soft_time_limit=240, ignore_result=True)
def check_budgets() -> None:
    """Every 10 minutes: alert the owners of projects that crossed a budget threshold."""
    alerts.budgets_check_all()


@shared_task(time_limit=1800, soft_time_limit=1740, ignore_result=True)
def nudge_forgotten() -> None:
    """Weekly: one digest per project about servers that run long and do little."""
    nudges.nudge_forgotten_all()


@shared_task(time_limit=300, soft_time_limit=240, ignore_result=True)
def enforce_leases() -> None:
    """Every 15 minutes: remind a day before a lease ends, stop the server when it does."""
    leases.leases_enforce()
