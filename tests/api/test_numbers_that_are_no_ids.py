"""A number too long to be an id (19 digits: past 2**63; 5,000: past what Python converts) is "no
such thing" wherever an id is typed, never a 500; and a name finds the catalog's image before a
project's own image of the same name."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.models import Image
from portal.compute.models import BackupSchedule
from tests.api.conftest import launch_body
from tests.factories import InstanceFactory

HUGE = ["9" * 19, "9" * 5000]


@pytest.mark.parametrize("number", HUGE, ids=["19 digits", "5000 digits"])
def test_web_forms_and_links(number, project, owner, client_as, catalog):
    client = client_as(owner)
    server = InstanceFactory(project=project, status="running")
    args = [project.organization.slug, project.slug]
    wizard = client.get(reverse("compute:launch", args=args), {"image": number, "zone": number})
    assert wizard.status_code == 200
    image = Image.objects.filter(project__isnull=True).first()
    wizard = client.get(reverse("compute:launch", args=args), {"image": image.pk, "zone": number})
    assert wizard.status_code == 200
    backups = reverse("compute:instance_backups", args=[*args, server.pk])
    for field in ("hour", "keep", "weekday"):
        data = {"enabled": "on", "frequency": "weekly", "hour": "3", "weekday": "1", "keep": "3", field: number}
        assert client.post(backups, data).status_code == 400, field
    assert not BackupSchedule.objects.exists()
    resize = client.post(
        reverse("compute:instance_action", args=[*args, server.pk]), {"action": "resize", "flavor": number}
    )
    assert resize.status_code == 400


@pytest.mark.parametrize("number", HUGE, ids=["19 digits", "5000 digits"])
def test_api_lookups(number, owner_api, project):
    assert owner_api.get("snapshots", project=number).status_code == 404
    assert owner_api.get("images", project=number).status_code == 404
    assert owner_api.post("snapshots", {"project": number, "server": "x"}).status_code in (404, 422)
    launched = owner_api.post("instances", launch_body(project, image=number))
    assert launched.status_code == 422, launched.content


def test_a_name_finds_the_catalog_image_before_a_project_image_of_that_name(owner_api, project):
    public = Image.objects.filter(project__isnull=True, zones__code="fra1-a").first()
    own = Image.objects.create(
        project=project, os_family=public.os_family, name=public.name, version="zzz", min_disk_gib=1
    )
    own.zones.add(*public.zones.all())
    launched = owner_api.post("instances", launch_body(project, image=public.name))
    assert launched.status_code == 202, launched.content
    assert {i.image_id for i in project.instances.all()} == {public.pk}
