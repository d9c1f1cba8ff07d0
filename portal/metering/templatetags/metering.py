"""The usage panel of a server's detail page (templates/metering/_instance_usage.html)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.timesince import timesince

from portal.catalog.models import HOURS_PER_MONTH
from portal.lib.money import apportion, money
from portal.metering.models import Meter
from portal.metering.selectors import resource_month_to_date

register = template.Library()


@register.simple_tag
def instance_month_usage(instance) -> dict:
    """Cost and running hours this month, from the database only (the cloud is not asked here)."""
    now = timezone.now()
    usage = resource_month_to_date(resource_id=instance.pk, now=now)
    by_meter = usage.cost_by_meter
    cost = money(usage.cost)
    exact_compute = by_meter.get(Meter.COMPUTE, 0) + by_meter.get(Meter.LICENSE, 0)
    # "compute … · disk …" adds up to the cost beside it (a server's other meter is its disk).
    compute, disk = apportion([exact_compute, usage.cost - exact_compute], cost)
    return {
        "since": usage.since,
        "uptime": timesince(instance.running_since, now) if instance.running_since else "",
        "cost": cost,
        "running_hours": usage.running_hours.quantize(Decimal("0.1"), ROUND_HALF_UP),
        "compute": compute,
        "disk": disk,
        "disk_monthly": money(instance.root_disk_gib * settings.PORTAL_DISK_PRICE_GIB_HOUR * HOURS_PER_MONTH),
        "currency": settings.PORTAL_CURRENCY,
    }
