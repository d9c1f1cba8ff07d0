"""The "Copy to region…" page: the allowed zones with the copy's price, the forbidden regions with
the policy's reason (and not offered); POST makes the copy; refusals re-render with every reason
and the right status, nothing changed. GET→405 does not apply (the page is GET and POST)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Region, Zone
from portal.compute.image_copy import copy_price_monthly
from portal.compute.models import Operation, Snapshot, SnapshotStatus
from portal.residency.models import ResidencyPolicy
from tests.compute.test_image_copy import image  # noqa: F401
from tests.compute.test_snapshots import server  # noqa: F401
from tests.steps import drive


def _url(project, snapshot) -> str:
    return reverse("compute:snapshot_copy", args=[project.organization.slug, project.slug, snapshot.pk])


@pytest.fixture
def eu_only(org):
    """Project policy: EU regions only (iad1 in the US is forbidden)."""
    policy = ResidencyPolicy.objects.create(organization=org, name="EU only")
    policy.jurisdictions.set([Region.objects.get(code="fra1").jurisdiction])
    return policy


def test_the_page_lists_allowed_zones_with_the_price_and_forbidden_regions_with_the_reason(
    client_as,
    owner,
    project,
    image,  # noqa: F811
    eu_only,
):
    page = client_as(owner).get(_url(project, image))
    assert page.status_code == 200
    html = page.content.decode()
    options = html.split('<select name="zone"')[1].split("</select>")[0]
    assert 'value="ams1-a"' in options and 'value="iad1-a"' not in options
    assert 'value="fra1-b"' not in options  # its own region is no choice
    refused = html.split('id="copy-refused-list"')[1].split("</ul>")[0]
    assert "iad1-a" in refused and "Blocked by" in refused
    price = copy_price_monthly(image)
    assert price > 0 and f"+{price} {settings.PORTAL_CURRENCY}/month" in html


def test_post_makes_the_copy(client_as, owner, project, image):  # noqa: F811
    response = client_as(owner).post(_url(project, image), {"zone": "ams1-a"})
    assert response.status_code == 302
    copy = Snapshot.objects.get(copied_from=image)
    assert copy.zone.code == "ams1-a"
    drive(Operation.objects.get(snapshot=copy))
    page = client_as(owner).get(reverse("compute:images", args=[project.organization.slug, project.slug]))
    assert "Copy of golden from fra1-a" in page.content.decode()


def test_a_forbidden_region_is_403_with_the_reason_and_audited(client_as, owner, project, image, eu_only):  # noqa: F811
    response = client_as(owner).post(_url(project, image), {"zone": "iad1-a"})
    assert response.status_code == 403 and "Blocked by" in response.content.decode()
    assert not Snapshot.objects.filter(copied_from=image).exists()
    assert AuditEvent.objects.filter(action=AuditAction.PLACEMENT_DENIED).count() == 1


@pytest.mark.parametrize(
    ("zone", "status", "words"),
    [
        ("", 400, "Choose the zone"),
        ("nowhere-z", 400, "There is no zone nowhere-z"),
        ("fra1-b", 400, "already in"),
    ],
)
def test_bad_input_is_a_clear_4xx(client_as, owner, project, image, zone, status, words):  # noqa: F811
    response = client_as(owner).post(_url(project, image), {"zone": zone})
    assert response.status_code == status and words in response.content.decode()
    assert Snapshot.objects.count() == 1


def test_an_image_not_yet_available_says_so(client_as, owner, project, image):  # noqa: F811
    Snapshot.objects.filter(pk=image.pk).update(status=SnapshotStatus.CREATING)
    page = client_as(owner).get(_url(project, image))
    assert "not available yet" in page.content.decode() and '<select name="zone"' not in page.content.decode()
    assert client_as(owner).post(_url(project, image), {"zone": "ams1-a"}).status_code == 409


def test_a_zone_without_the_capability_is_not_offered_and_says_why(client_as, owner, project, image):  # noqa: F811
    Zone.objects.filter(code="ams1-a").update(backend_settings={"absent": ["image_copy"]})
    html = client_as(owner).get(_url(project, image)).content.decode()
    assert "Image copies between regions are not available in ams1-a." in html
    assert 'value="ams1-a"' not in html.split('<select name="zone"')[1].split("</select>")[0]


def test_viewer_outsider_and_another_projects_image(client_as, viewer, outsider, owner, project, org, image):  # noqa: F811
    assert client_as(viewer).post(_url(project, image), {"zone": "ams1-a"}).status_code == 403
    assert client_as(viewer).get(_url(project, image)).status_code == 403
    assert client_as(outsider).get(_url(project, image)).status_code == 404
    from tests.factories import ProjectFactory

    other = ProjectFactory(organization=org, slug="other")
    url = reverse("compute:snapshot_copy", args=[org.slug, other.slug, image.pk])
    assert client_as(owner).post(url, {"zone": "ams1-a"}).status_code == 404
    assert Snapshot.objects.count() == 1


def test_the_snapshot_list_offers_the_copy(client_as, owner, viewer, project, image):  # noqa: F811
    snapshots = reverse("compute:snapshots", args=[project.organization.slug, project.slug])
    assert _url(project, image) in client_as(owner).get(snapshots).content.decode()
    assert _url(project, image) not in client_as(viewer).get(snapshots).content.decode()
