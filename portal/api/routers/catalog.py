"""What can be launched where, at what price; and whether the token's policy allows each zone."""

from django.conf import settings
from django.http import HttpRequest
from ninja import Router

from portal.api.access import find_project, token_project_access
from portal.api.routers.common import token_of
from portal.api.schemas import (
    FlavorList,
    FlavorOut,
    ImageList,
    ImageOut,
    Placement,
    PricesOut,
    Problem,
    ZoneList,
    ZoneOut,
)
from portal.catalog.models import HOURS_PER_MONTH, Flavor, Image
from portal.residency.placement import PlacementRules, zones_for_decisions

router = Router(tags=["catalog"])
ERRORS = {401: Problem, 404: Problem, 429: Problem}


@router.get("/catalog/zones", response={200: ZoneList, **ERRORS}, summary="List zones")
def list_zones(request: HttpRequest, project: str | None = None):
    """Every zone of an active region, with its jurisdiction, status and availability, and whether
    your residency policy allows it (the organization's; with ?project= or a project-bound token,
    also the project's), with the reasons when it does not."""
    token = token_of(request)
    if project is None and token.project_id is not None:
        project = str(token.project_id)
    if project is not None:
        rules = PlacementRules.for_project(token_project_access(token, find_project(token, project)).project)
    else:
        rules = PlacementRules.for_organization(token.organization)
    zones = zones_for_decisions().filter(region__is_active=True).order_by("code")
    items = []
    for zone in zones:
        decision = rules.decide(zone)
        region = zone.region
        items.append(
            ZoneOut(
                code=zone.code,
                region=region.code,
                region_name=region.name,
                city=region.city,
                country=region.country,
                jurisdiction=region.jurisdiction.code,
                jurisdiction_name=region.jurisdiction.name,
                certifications=sorted(c.name for c in region.certifications.all()),
                status=zone.status,
                accepts_launches=zone.accepts_launches,
                availability=zone.availability.value,
                placement=Placement(allowed=decision.allowed, reasons=list(decision.reasons)),
            )
        )
    return ZoneList(items=items)


def _zone_codes(obj) -> list[str]:
    return sorted(z.code for z in obj.zones.all() if z.region.is_active)


@router.get("/catalog/flavors", response={200: FlavorList, **ERRORS}, summary="List sizes")
def list_flavors(request: HttpRequest):
    flavors = Flavor.objects.filter(is_active=True).prefetch_related("zones__region")
    return FlavorList(
        items=[
            FlavorOut(
                code=f.code,
                name=f.name,
                vcpus=f.vcpus,
                ram_gib=f.ram_gib,
                root_disk_gib=f.root_disk_gib,
                price_hourly=f.price_hourly,
                price_monthly=f.price_monthly,
                currency=settings.PORTAL_CURRENCY,
                zones=_zone_codes(f),
            )
            for f in flavors
        ]
    )


@router.get("/catalog/images", response={200: ImageList, **ERRORS}, summary="List images")
def list_images(request: HttpRequest):
    images = Image.objects.public().prefetch_related("zones__region")
    return ImageList(
        items=[
            ImageOut(
                id=i.pk,
                name=i.name,
                os_family=i.os_family,
                version=i.version,
                min_disk_gib=i.min_disk_gib,
                license_price_hourly=i.license_price_hourly,
                currency=settings.PORTAL_CURRENCY,
                zones=_zone_codes(i),
            )
            for i in images
        ]
    )


@router.get("/catalog/prices", response={200: PricesOut, **ERRORS}, summary="Price list")
def prices(request: HttpRequest):
    """Hourly prices: sizes, image licences, root disks and volumes per GiB. A month is 730 hours."""
    return PricesOut(
        currency=settings.PORTAL_CURRENCY,
        disk_gib_hour=settings.PORTAL_DISK_PRICE_GIB_HOUR,
        volume_gib_hour=settings.PORTAL_VOLUME_PRICE_GIB_HOUR,
        hours_per_month=HOURS_PER_MONTH,
        flavors={f.code: f.price_hourly for f in Flavor.objects.filter(is_active=True)},
        image_licenses={i.name: i.license_price_hourly for i in Image.objects.public()},
    )
