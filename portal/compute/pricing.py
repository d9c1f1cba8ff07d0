"""What a configuration costs per hour while it runs: the same meters as portal.metering bills
(compute, the image's licence, the root disk). The size table and the wizard's summary both read
`launch_price`, so a size costs the same on both."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from portal.catalog.models import HOURS_PER_MONTH, Flavor, Image


@dataclass(frozen=True)
class LaunchPrice:
    """One server's hourly price, by meter."""

    compute: Decimal
    licence: Decimal
    disk_gib: int
    disk: Decimal

    @property
    def hourly(self) -> Decimal:
        return self.compute + self.licence + self.disk


def default_disk_gib(flavor: Flavor, image: Image | None) -> int:
    """The root disk a launch gets when none is asked for: the size's, or the image's minimum."""
    return max(flavor.root_disk_gib, image.min_disk_gib if image else 0)


def launch_price(flavor: Flavor, image: Image | None = None, root_disk_gib: int | None = None) -> LaunchPrice:
    disk = root_disk_gib or default_disk_gib(flavor, image)
    return LaunchPrice(
        compute=flavor.price_hourly,
        licence=image.license_price_hourly if image else Decimal(0),
        disk_gib=disk,
        disk=disk * settings.PORTAL_DISK_PRICE_GIB_HOUR,
    )


def price_per_hour(flavor: Flavor | None, image: Image | None, root_disk_gib: int | None) -> Decimal | None:
    """What one server of this configuration costs per hour while it runs (None without a size)."""
    if flavor is None:
        return None
    return launch_price(flavor, image, root_disk_gib).hourly


def monthly(hourly: Decimal) -> Decimal:
    return (hourly * HOURS_PER_MONTH).quantize(Decimal("0.01"))
