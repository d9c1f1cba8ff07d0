"""The usage panel of a server's detail page (templates/metering/_instance_usage.html)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.timesince import timesince

from portal.catalog.models import HOURS_PER_MONTH
from portal.metering.models import Meter
from portal.metering.selectors import resource_month_to_date

register = template.Library()
CENT = Decimal("0.01")


@register.simple_tag
def instance_month_usage(instance) -> dict:
    """Cost and running hours this month, from the database only (the cloud is not asked here)."""
    now = timezone.now()
    usage = resource_month_to_date(resource_id=instance.pk, now=now)
    by_meter = usage.cost_by_meter
    return {
        "since": usage.since,
        "uptime": timesince(instance.running_since, now) if instance.running_since else "",
        "cost": _cents(usage.cost),
        "running_hours": usage.running_hours.quantize(Decimal("0.1"), ROUND_HALF_UP),
        "compute": _cents(by_meter.get(Meter.COMPUTE, 0) + by_meter.get(Meter.LICENSE, 0)),
        "disk": _cents(by_meter.get(Meter.DISK, 0)),
        "disk_monthly": _cents(
            instance.root_disk_gib * settings.PORTAL_DISK_PRICE_GIB_HOUR * HOURS_PER_MONTH
        ),
        "currency": settings.PORTAL_CURRENCY,
    }


def _cents(value) -> Decimal:
    return Decimal(value).quantize(CENT, ROUND_HALF_UP)
