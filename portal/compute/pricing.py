"""What a configuration costs per hour while it runs: the same meters as portal.metering bills."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from portal.catalog.models import HOURS_PER_MONTH, Flavor, Image


def price_per_hour(flavor: Flavor | None, image: Image | None, root_disk_gib: int | None) -> Decimal | None:
    if flavor is None:
        return None
    """What one server of this configuration costs per hour while it runs (portal.metering's meters:
    compute + licence + root disk)."""
    price = flavor.price_hourly + (image.license_price_hourly if image else Decimal(0))
    disk = root_disk_gib or max(flavor.root_disk_gib, image.min_disk_gib if image else 0)
    return price + disk * settings.PORTAL_DISK_PRICE_GIB_HOUR


def monthly(hourly: Decimal) -> Decimal:
    return (hourly * HOURS_PER_MONTH).quantize(Decimal("0.01"))
