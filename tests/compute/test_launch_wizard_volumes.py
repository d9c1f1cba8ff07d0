"""The launch wizard's volumes: rows of new volumes and the project's unattached volumes of the
zone, priced in the summary and its budget line, refused all at once with nothing made, and plain
words where a zone has no volumes."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from portal.budgets.models import Budget
from portal.catalog.models import Flavor, Image
from portal.compute.models import Instance, Operation, Volume
from tests.factories import InstanceFactory, ProjectFactory


@pytest.fixture
def form_data(catalog):
    return {
        "name": "web",
        "count": 1,
        "zone": catalog["fra1-a"].pk,
        "image": Image.objects.get(name="Debian 13").pk,
        "flavor": Flavor.objects.get(code="s-1vcpu-2gb").pk,
        "allow_all_inbound": "on",  # no firewall, confirmed
    }


@pytest.fixture
def urls(project):
    args = [project.organization.slug, project.slug]
    return {
        "launch": reverse("compute:launch", args=args),
        "check": reverse("compute:launch_check", args=args),
    }


@pytest.fixture
def spare(project, catalog):
    return Volume.objects.create(
        project=project, name="spare", zone=catalog["fra1-a"], size_gib=5, status="available", backend_id="v1"
    )


def _errors_of(page: str, field: str) -> list[str]:
    block = re.search(rf'<div id="errors-{field}" class="section-errors"[^>]*>(.*?)</div>', page, re.S)
    assert block, f"no error block for {field}"
    return re.findall(r'<p class="error">(.*?)</p>', block.group(1), re.S)


def _summary(page: str) -> str:
    return re.search(r'<aside id="launch-summary".*?</aside>', page, re.S).group(0)


def test_launching_with_new_and_existing_volumes(client_as, owner, form_data, urls, spare, knobs):
    data = form_data | {"new_volumes_name": ["data", "logs"], "new_volumes_size_gib": ["100", "2"]}
    data["existing_volumes"] = [str(spare.pk)]
    answer = client_as(owner).post(urls["launch"], data)
    assert answer.status_code == 302
    server = Instance.objects.get()
    assert sorted(Volume.objects.filter(pending_server=server).values_list("name", "size_gib")) == [
        ("spare", 5),
        ("web-data", 100),
        ("web-logs", 2),
    ]
    assert Operation.objects.filter(action="volume_create", state="pending").count() == 2


def test_the_summary_prices_the_new_volumes_and_counts_them_in_the_budget(
    client_as, owner, form_data, urls, spare, project, settings
):
    Budget.objects.create(project=project, amount=Decimal("100.00"))
    client = client_as(owner)
    before = _summary(client.post(urls["check"], form_data).content.decode())
    data = form_data | {"count": 2, "new_volumes_name": ["data"], "new_volumes_size_gib": ["100"]}
    after = _summary(client.post(urls["check"], data).content.decode())
    # 100 GiB at the catalog's volume price (as the new-volume form shows it), for each of 2 servers.
    each = (100 * settings.PORTAL_VOLUME_PRICE_GIB_HOUR * 730).quantize(Decimal("0.01"))
    assert f"data</span> · 100 GiB, new for each server · {each} EUR/month each" in after
    assert f"New volumes: 200 GiB, {each * 2} EUR a month" in after

    def total(page):
        return Decimal(re.search(r'class="price"><strong>([\d,.]+)', page).group(1).replace(",", ""))

    single = total(before)
    assert total(after) == single * 2 + each * 2

    def budget(page):
        return re.search(r'class="budget-impact[^"]*">(.*?)</p>', page, re.S).group(1)

    assert budget(before) != budget(after)
    assert "Volume storage: 205 GiB of" in after


def test_the_zone_offers_its_unattached_volumes_only(
    client_as, owner, form_data, urls, spare, project, catalog
):
    Volume.objects.create(project=project, name="far", zone=catalog["iad1-a"], size_gib=5, status="available")
    Volume.objects.create(
        project=project,
        name="busy",
        zone=catalog["fra1-a"],
        size_gib=5,
        status="in_use",
        attached_to=InstanceFactory(project=project, zone=catalog["fra1-a"], status="running"),
    )
    page = client_as(owner).post(urls["check"], form_data).content.decode()
    offered = re.findall(r'name="existing_volumes" value="([^"]+)"', page)
    assert offered == [str(spare.pk)]


def test_a_zone_without_volumes_says_so_and_takes_none(client_as, owner, form_data, urls, catalog):
    zone = catalog["fra1-a"]
    zone.backend_settings = {**zone.backend_settings, "absent": ["volumes"]}
    zone.save()
    client = client_as(owner)
    check = client.post(urls["check"], form_data | {"sections_zone": ""}).content.decode()
    assert "Volumes are not available in fra1-a." in check and 'name="new_volumes_name"' not in check
    refused = client.post(
        urls["launch"], form_data | {"new_volumes_name": "data", "new_volumes_size_gib": "10"}
    )
    assert refused.status_code == 409
    assert _errors_of(refused.content.decode(), "new_volumes") == [
        "Volumes are not available in fra1-a. Launch without volumes, or choose another zone."
    ]
    assert not Instance.objects.exists() and not Volume.objects.exists()


def test_every_problem_at_once_and_nothing_made(client_as, owner, form_data, urls, spare, project, catalog):
    theirs = Volume.objects.create(
        project=ProjectFactory(organization=project.organization),
        name="theirs",
        zone=catalog["fra1-a"],
        size_gib=5,
        status="available",
    )
    data = form_data | {
        "count": 2,
        "new_volumes_name": ["data", "Bad", "big"],
        "new_volumes_size_gib": ["ten", "10", "99999"],
        "existing_volumes": [str(spare.pk)],
    }
    page = client_as(owner).post(urls["launch"], data)
    assert page.status_code == 400
    text = page.content.decode()
    # A size that is no number is said by the form; the rules then have nothing to judge there.
    assert _errors_of(text, "new_volumes") == ["New volume 1: give its size in GiB, a whole number."]
    assert _errors_of(text, "existing_volumes") == [
        "Existing volumes can only be attached to a single server: launch one, or add new volumes "
        "(each server gets its own set)."
    ]
    data["new_volumes_size_gib"] = ["10", "10", "99999"]
    text = client_as(owner).post(urls["launch"], data).content.decode()
    assert _errors_of(text, "new_volumes") == [
        "New volume 2: use lower-case letters, digits and hyphens (not at the start or end).",
        "New volume 3: a volume is 1 to 16384 GiB.",
    ]
    assert "things to fix" in text
    # Another project's volume is no choice, in the same words as one that does not exist.
    for ref in (str(theirs.pk), "00000000-0000-0000-0000-000000000000"):
        text = client_as(owner).post(urls["launch"], form_data | {"existing_volumes": [ref]}).content.decode()
        assert _errors_of(text, "existing_volumes") == ["Choose volumes of this project."]
        assert "theirs" not in text
    assert not Instance.objects.exists() and Volume.objects.count() == 2
