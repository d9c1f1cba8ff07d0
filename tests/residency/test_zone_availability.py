"""What customers are told about a zone's room: "available", "limited", "sold out" or "closed",
from one method, the same on the zone picker, in the launch rules and in the API; never the
operator's capacity figures, which admin still shows."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.catalog.models import Availability, Flavor, Image, Zone, ZoneStatus
from portal.compute.models import Instance


@pytest.mark.parametrize(
    ("status", "vcpus", "ram", "measured", "expected"),
    [
        (ZoneStatus.AVAILABLE, 2400, 9600, True, Availability.AVAILABLE),
        (ZoneStatus.DEGRADED, 2400, 9600, True, Availability.AVAILABLE),
        (ZoneStatus.AVAILABLE, Zone.LIMITED_BELOW_VCPUS - 1, 9600, True, Availability.LIMITED),
        (ZoneStatus.AVAILABLE, 2400, Zone.LIMITED_BELOW_RAM_GIB - 1, True, Availability.LIMITED),
        (
            ZoneStatus.AVAILABLE,
            Zone.LIMITED_BELOW_VCPUS,
            Zone.LIMITED_BELOW_RAM_GIB,
            True,
            Availability.AVAILABLE,
        ),
        (ZoneStatus.AVAILABLE, 0, 9600, True, Availability.SOLD_OUT),  # the backend says it is full
        (ZoneStatus.AVAILABLE, 0, 0, False, Availability.AVAILABLE),  # never measured: its status
        (ZoneStatus.SOLD_OUT, 2400, 9600, True, Availability.SOLD_OUT),
        (ZoneStatus.MAINTENANCE, 2400, 9600, True, Availability.CLOSED),
    ],
)
def test_availability_joins_the_status_and_the_capacity(catalog, status, vcpus, ram, measured, expected):
    zone = catalog["fra1-a"]
    zone.status, zone.free_vcpus, zone.free_ram_gib = status, vcpus, ram
    zone.capacity_updated_at = timezone.now() if measured else None
    assert zone.availability == expected
    assert zone.accepts_launches == (expected in (Availability.AVAILABLE, Availability.LIMITED))


def _full(zone: Zone) -> None:
    """As the reconciler records a backend with nothing left."""
    Zone.objects.filter(pk=zone.pk).update(free_vcpus=0, free_ram_gib=0, capacity_updated_at=timezone.now())


def test_the_wizard_never_shows_the_operators_figures(project, owner, client_as, catalog):
    page = client_as(owner).get(reverse("compute:launch", args=[project.organization.slug, project.slug]))
    text = page.content.decode()
    assert "vCPUs" not in text and "GiB RAM free" not in text and "2400" not in text
    assert "Available." in text


def test_a_full_zone_reads_sold_out_on_its_badge_and_its_note_and_refuses(project, owner, client_as, catalog):
    """An "available" zone the backend reports full used to say "0 vCPUs, 0 GiB RAM free" under
    no badge, with its radio enabled: now everything about it says sold out."""
    zone = catalog["fra1-a"]
    _full(zone)
    url = reverse("compute:launch", args=[project.organization.slug, project.slug])
    text = client_as(owner).get(url).content.decode()
    label = text[text.index(f'name="zone" value="{zone.pk}"') :]
    label = label[: label.index("</label>")]
    assert "disabled" in label
    assert '<span class="badge badge-availability-sold_out">Sold out</span>' in label
    assert "Sold out right now. Try fra1-b instead." in label
    response = client_as(owner).post(
        url,
        {
            "name": "web",
            "count": 1,
            "zone": zone.pk,
            "image": Image.objects.get(name="Debian 13").pk,
            "flavor": Flavor.objects.get(code="s-1vcpu-2gb").pk,
            "allow_all_inbound": "on",  # no firewall, confirmed
        },
    )
    assert response.status_code == 409
    assert "fra1-a is sold out right now; choose another zone." in response.content.decode()
    assert not Instance.objects.exists()


def test_a_limited_zone_says_so_and_still_launches(project, owner, client_as, catalog):
    zone = catalog["fra1-a"]
    Zone.objects.filter(pk=zone.pk).update(free_vcpus=20, free_ram_gib=80, capacity_updated_at=timezone.now())
    url = reverse("compute:launch", args=[project.organization.slug, project.slug])
    text = client_as(owner).get(url).content.decode()
    label = text[text.index(f'name="zone" value="{zone.pk}"') :]
    label = label[: label.index("</label>")]
    assert "disabled" not in label
    assert '<span class="badge badge-availability-limited">Limited</span>' in label
    assert "Limited capacity: the larger sizes may not fit right now." in label


def test_the_api_gives_the_availability_not_the_figures(owner, org, catalog):
    from tests.api.conftest import ApiClient, make_token

    _full(catalog["fra1-b"])
    api = ApiClient(make_token(owner, org)[1])
    zones = {z["code"]: z for z in api.get("catalog/zones").json()["items"]}
    assert zones["fra1-a"]["availability"] == "available"
    assert zones["fra1-b"]["availability"] == "sold_out" and not zones["fra1-b"]["accepts_launches"]
    assert zones["fra1-c"]["availability"] == "closed"
    assert not any("free_vcpus" in z or "free_ram_gib" in z for z in zones.values())


def test_operators_still_see_the_figures_in_admin(admin_client, catalog):
    text = admin_client.get(reverse("admin:catalog_zone_changelist")).content.decode()
    assert "2400" in text and "9600" in text
