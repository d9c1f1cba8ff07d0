from celery import shared_task

from portal.metering.rollup import rollup_until


@shared_task(time_limit=600, soft_time_limit=540, ignore_result=True)
def rollup() -> None:
    """Periodic (celery beat): hourly and daily usage totals, idempotent."""
    rollup_until()
