from __future__ import annotations

from celery import shared_task

from portal.compute import reconciler, runner


@shared_task(
    acks_late=True,  # safe: every step is idempotent (see runner)
    reject_on_worker_lost=True,  # a killed worker's message goes back on the queue
    time_limit=120,
    soft_time_limit=90,
    ignore_result=True,
)
def operation_advance(operation_id: str, token: str | None = None) -> None:
    """Run one step of an operation, then schedule the next check (never sleep in a worker)."""
    step = runner.advance(operation_id, token)
    if not step.done:
        operation_advance.apply_async((operation_id, step.token), countdown=step.again_in)


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240, ignore_result=True)
def reconcile() -> None:
    """Periodic (celery beat): re-enqueue lost work, fail stuck operations, fix drift, flag orphans."""
    reconciler.reconcile()
