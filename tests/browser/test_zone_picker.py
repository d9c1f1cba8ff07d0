"""The zone picker in a real browser: pins select zones, forbidden regions stay greyed with their
reason, and the residency page shows where things live."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.demo import load_demo_catalog
from portal.catalog.models import Jurisdiction
from portal.residency.models import ResidencyPolicy
from portal.tenancy.models import Project, Role
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_picks_a_default_zone_on_the_map_under_an_eu_only_policy(live_server, new_page, shoot):
    load_demo_catalog()
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="owner@example.com")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")
    policy = ResidencyPolicy.objects.create(organization=org, name="EU only", updated_by=owner)
    policy.jurisdictions.set(Jurisdiction.objects.filter(code="eu"))

    page = new_page()
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.goto(live_server.url + reverse("tenancy:project_settings", args=[org.slug, project.slug]))

    picker = page.locator("[data-zone-picker]")
    ashburn = picker.locator("#region-iad1")
    assert (
        "Blocked by organization policy 'EU only': Ashburn is in United States jurisdiction"
        in ashburn.inner_text()
    )
    assert ashburn.locator("input").count() == 0

    page.locator('.pin[data-region="iad1"]').click()  # a forbidden pin selects nothing
    assert picker.locator("input[name=zone]:checked").count() == 0
    page.locator('.pin[data-region="fra1"]').click()
    assert picker.locator("input[name=zone]:checked").get_attribute("value") == str(
        picker.locator("#region-fra1 input").first.get_attribute("value")
    )
    assert "pin-current" in page.locator('.pin[data-region="fra1"]').get_attribute("class")
    picker.scroll_into_view_if_needed()
    shoot(page, "10-zone-picker")

    page.get_by_role("button", name="Save default zone").click()
    assert page.get_by_text("New resources will go to fra1-a.").is_visible()
    assert Project.objects.get(pk=project.pk).default_zone.code == "fra1-a"

    page.goto(live_server.url + reverse("residency:project_residency", args=[org.slug, project.slug]))
    assert page.get_by_text("Compliant").first.is_visible()
    shoot(page, "11-project-residency")
    page.goto(live_server.url + reverse("residency:org_residency", args=[org.slug]))
    shoot(page, "12-organization-residency")
    assert not page.csp_violations
