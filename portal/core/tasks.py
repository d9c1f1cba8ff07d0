from celery import shared_task
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone


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


@shared_task(
    autoretry_for=(Exception,),
    retry_backoff=30,
    retry_backoff_max=1800,
    retry_jitter=True,
    max_retries=12,
    time_limit=60,
    soft_time_limit=50,
)
def mail_deliver(payload: dict) -> None:
    """Retry a message the first attempt could not deliver (see portal.core.mail)."""
    message = EmailMultiAlternatives(
        payload["subject"], payload["body"], payload["from_email"], payload["to"]
    )
    for content, mimetype in payload["alternatives"]:
        message.attach_alternative(content, mimetype)
    message.send()
