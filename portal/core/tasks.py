from celery import shared_task
from django.contrib.sessions.models import Session
from django.utils import timezone


@shared_task(time_limit=120, soft_time_limit=100)
def sessions_clear_expired() -> int:
    """Daily housekeeping: drop expired sign-in sessions."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted


@shared_task(time_limit=10)
def ping(marker: str) -> str:
    """A no-op used by health checks and tests to prove that a worker consumes the broker."""
    return marker
