from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from portal.api.models import IdempotencyRecord


@shared_task(time_limit=120, soft_time_limit=100)
def purge_idempotency_keys() -> int:
    """Hourly: forget Idempotency-Keys older than PORTAL_API_IDEMPOTENCY_HOURS (24 h)."""
    cutoff = timezone.now() - timedelta(hours=settings.PORTAL_API_IDEMPOTENCY_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
