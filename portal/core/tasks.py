from celery import shared_task
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.utils import timezone

from portal.core import mail


@shared_task(time_limit=120, soft_time_limit=100)
def sessions_clear_expired() -> int:
    """Daily housekeeping: drop expired sign-in sessions."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted


@shared_task(time_limit=10, soft_time_limit=8)
def ping(marker: str) -> str:
    """Leave `marker` in the shared cache: proof for the sender that a worker consumed the broker."""
    cache.set(f"ping:{marker}", marker, timeout=300)
    return marker


@shared_task(time_limit=300, soft_time_limit=240)
def outbox_send_due() -> int:
    """Periodic (celery beat): send the e-mails whose delivery failed or never happened."""
    return mail.outbox_send_due()
