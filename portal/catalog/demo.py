"""A realistic demo catalog: 7 regions in 5 jurisdictions, 2-3 zones each, 8 flavors, 6 images.

Idempotent (keyed by codes), so `seed_demo` can load it on every `make run`; an operator's later
edits in admin (prices, statuses) are kept.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from portal.catalog.models import (
    Certification,
    Flavor,
    Image,
    Jurisdiction,
    OsFamily,
    Region,
    Zone,
    ZoneStatus,
)

JURISDICTIONS = [
    ("eu", "European Union", "EU — GDPR"),
    ("ch", "Switzerland", "Switzerland — FADP"),
    ("uk", "United Kingdom", "United Kingdom — UK GDPR and Data Protection Act 2018"),
    ("us", "United States", "United States — CLOUD Act applies"),
    ("sg", "Singapore", "Singapore — PDPA"),
]
CERTIFICATIONS = [
    ("iso-27001", "ISO 27001"),
    ("soc-2", "SOC 2"),
    ("c5", "C5"),
    ("hipaa", "HIPAA-eligible"),
    ("hds", "HDS (French health data)"),
]
# code, name, city, country, jurisdiction, lat, lon, certifications, zones {suffix: (status, vcpus, ram)}
REGIONS = [
    (
        "fra1",
        "Frankfurt",
        "Frankfurt am Main",
        "DE",
        "eu",
        "50.1109",
        "8.6821",
        ["iso-27001", "soc-2", "c5"],
        {"a": ("available", 2400, 9600), "b": ("available", 1800, 7200), "c": ("maintenance", 0, 0)},
    ),
    (
        "ams1",
        "Amsterdam",
        "Amsterdam",
        "NL",
        "eu",
        "52.3676",
        "4.9041",
        ["iso-27001", "soc-2"],
        {"a": ("available", 1600, 6400), "b": ("degraded", 400, 1600)},
    ),
    (
        "par1",
        "Paris",
        "Paris",
        "FR",
        "eu",
        "48.8566",
        "2.3522",
        ["iso-27001", "hds"],
        {"a": ("available", 1200, 4800), "b": ("sold_out", 0, 0)},
    ),
    (
        "zrh1",
        "Zurich",
        "Zurich",
        "CH",
        "ch",
        "47.3769",
        "8.5417",
        ["iso-27001"],
        {"a": ("available", 800, 3200), "b": ("available", 640, 2560)},
    ),
    (
        "lon1",
        "London",
        "London",
        "GB",
        "uk",
        "51.5072",
        "-0.1276",
        ["iso-27001", "soc-2"],
        {"a": ("available", 1400, 5600), "b": ("available", 900, 3600)},
    ),
    (
        "iad1",
        "Ashburn",
        "Ashburn, Virginia",
        "US",
        "us",
        "39.0438",
        "-77.4874",
        ["iso-27001", "soc-2", "hipaa"],
        {"a": ("available", 3200, 12800), "b": ("available", 2800, 11200), "c": ("available", 2000, 8000)},
    ),
    (
        "sin1",
        "Singapore",
        "Singapore",
        "SG",
        "sg",
        "1.3521",
        "103.8198",
        ["iso-27001", "soc-2"],
        {"a": ("available", 1000, 4000), "b": ("sold_out", 0, 0)},
    ),
]
# code, name, vcpus, ram GiB, disk GiB, €/hour
FLAVORS = [
    ("s-1vcpu-1gb", "Starter 1", 1, 1, 25, "0.0060"),
    ("s-1vcpu-2gb", "Starter 2", 1, 2, 50, "0.0110"),
    ("s-2vcpu-4gb", "Standard 4", 2, 4, 80, "0.0220"),
    ("s-4vcpu-8gb", "Standard 8", 4, 8, 160, "0.0440"),
    ("c-8vcpu-16gb", "Compute 16", 8, 16, 200, "0.0960"),
    ("m-8vcpu-64gb", "Memory 64", 8, 64, 400, "0.2100"),
    ("c-16vcpu-32gb", "Compute 32", 16, 32, 400, "0.1900"),
    ("m-32vcpu-128gb", "Memory 128", 32, 128, 800, "0.6800"),
]
# os family, name, version, min disk, licence €/hour
IMAGES = [
    (OsFamily.DEBIAN, "Debian 13", "13 (trixie)", 10, "0"),
    (OsFamily.UBUNTU, "Ubuntu 24.04 LTS", "24.04", 10, "0"),
    (OsFamily.UBUNTU, "Ubuntu 22.04 LTS", "22.04", 10, "0"),
    (OsFamily.ROCKY, "Rocky Linux 9", "9.6", 10, "0"),
    (OsFamily.ALPINE, "Alpine Linux 3.22", "3.22", 2, "0"),
    (OsFamily.WINDOWS, "Windows Server 2025", "2025 Datacenter", 50, "0.0480"),
]
# The largest memory flavor is only offered where the big hosts are.
BIG_FLAVOR_REGIONS = {"fra1", "iad1"}


@transaction.atomic
def load_demo_catalog() -> None:
    jurisdictions = {
        code: Jurisdiction.objects.get_or_create(code=code, defaults={"name": name, "legal_framework": law})[
            0
        ]
        for code, name, law in JURISDICTIONS
    }
    certifications = {
        code: Certification.objects.get_or_create(code=code, defaults={"name": name})[0]
        for code, name in CERTIFICATIONS
    }
    zones_by_region: dict[str, list[Zone]] = {}
    for code, name, city, country, jurisdiction, lat, lon, certs, zones in REGIONS:
        region, created = Region.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "city": city,
                "country": country,
                "jurisdiction": jurisdictions[jurisdiction],
                "latitude": Decimal(lat),
                "longitude": Decimal(lon),
            },
        )
        if created:
            region.certifications.set([certifications[c] for c in certs])
        zones_by_region[code] = [
            Zone.objects.get_or_create(
                code=f"{code}-{suffix}",
                defaults={
                    "region": region,
                    "status": ZoneStatus(status),
                    "free_vcpus": vcpus,
                    "free_ram_gib": ram,
                },
            )[0]
            for suffix, (status, vcpus, ram) in zones.items()
        ]
    all_zones = [zone for zones in zones_by_region.values() for zone in zones]
    for code, name, vcpus, ram, disk, price in FLAVORS:
        flavor, created = Flavor.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "vcpus": vcpus,
                "ram_gib": ram,
                "root_disk_gib": disk,
                "price_hourly": Decimal(price),
            },
        )
        if created:
            big = vcpus >= 32
            flavor.zones.set(
                [
                    z
                    for r, zones in zones_by_region.items()
                    if not big or r in BIG_FLAVOR_REGIONS
                    for z in zones
                ]
            )
    for family, name, version, min_disk, licence in IMAGES:
        image, created = Image.objects.get_or_create(
            name=name,
            defaults={
                "os_family": family,
                "version": version,
                "min_disk_gib": min_disk,
                "license_price_hourly": Decimal(licence),
            },
        )
        if created:
            image.zones.set(all_zones)
