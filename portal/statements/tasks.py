from celery import shared_task

from portal.statements.services import statements_close_due


@shared_task(time_limit=1800, soft_time_limit=1740, ignore_result=True)
def close_months() -> None:
    """Periodic (celery beat, daily): close every organization's previous month, once."""
    statements_close_due()
