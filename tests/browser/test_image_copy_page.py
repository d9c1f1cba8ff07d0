"""Copy to another region in a browser, at a desktop and a phone width: the form offers the zones
the residency policy allows, with the copy's price, and lists a forbidden region with the policy's
reason; after the click the copy is on the Snapshots page and, once the cloud made it, in My images.
Shots into docs/screenshots/ (66-, 67-)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.models import Region
from portal.compute.models import Operation, SimulatedKnobs, Snapshot
from portal.residency.models import ResidencyPolicy
from tests.browser.pages import WIDTHS, look, owner_page  # noqa: F401 (fixture)
from tests.browser.test_snapshot_pages import _seed
from tests.steps import drive

pytestmark = pytest.mark.browser


def _both_widths(page, shoot, name: str) -> None:
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} scrolls sideways"
        shoot(page, name if label == "desktop" else f"{name}-mobile")
    page.set_viewport_size({"width": 1366, "height": 900})


def test_copy_an_image_to_another_region(owner_page, shoot, tmp_path):  # noqa: F811
    page = owner_page
    _seed(page)
    SimulatedKnobs.objects.update(action_seconds=0)
    org, project = page.project.organization, page.project
    policy = ResidencyPolicy.objects.create(organization=org, name="EU only")
    policy.jurisdictions.set([Region.objects.get(code="fra1").jurisdiction])
    source = Snapshot.objects.get(name="before-php-upgrade")

    page.goto(page.base + reverse("compute:images", args=[org.slug, project.slug]))
    page.get_by_role("link", name="Copy to region…").first.click()
    page.wait_for_url(f"**/snapshots/{source.pk}/copy/")
    options = page.locator("#id_zone option").all_inner_texts()
    assert any(o.startswith("ams1-a") for o in options) and not any(o.startswith("iad1") for o in options)
    refused = page.locator("#copy-refused-list").inner_text()
    assert "iad1-a" in refused and "Blocked by" in refused
    assert "EUR/month" in page.locator("#copy-price").inner_text()
    look(page, tmp_path, "image-copy-form")
    _both_widths(page, shoot, "68-storage-image-copy")

    page.select_option("#id_zone", "ams1-a")
    page.get_by_role("button", name="Copy image").click()
    page.wait_for_url("**/snapshots/*")
    copy = Snapshot.objects.get(copied_from=source)
    drive(Operation.objects.get(snapshot=copy))
    page.goto(page.base + reverse("compute:images", args=[org.slug, project.slug]))
    row = page.locator(f"#image-{Snapshot.objects.get(pk=copy.pk).image_id}")
    assert "ams1-a" in row.inner_text() and "Copy of before-php-upgrade from fra1-a" in row.inner_text()
    look(page, tmp_path, "image-copied")
    _both_widths(page, shoot, "69-storage-image-copied")
    assert page.csp_violations == []
