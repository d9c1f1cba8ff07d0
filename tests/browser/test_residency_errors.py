"""A residency policy that fails to save comes back where the eye is: the page opens on the form,
with a summary of what to fix at its top and each error beside its field."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.demo import load_demo_catalog
from portal.catalog.models import Jurisdiction
from portal.residency.models import ResidencyPolicy
from portal.tenancy.models import Role
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _in_viewport(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] >= 56 and box["y"] + min(box["height"], 120) <= height


@pytest.mark.parametrize("width", [1366, 390])
def test_a_refused_project_policy_opens_on_its_errors(live_server, browser, width):
    load_demo_catalog()
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(organization=org, role=Role.OWNER, user=UserFactory(email="o@example.com")).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")
    policy = ResidencyPolicy.objects.create(organization=org, name="EU only", updated_by=owner)
    policy.jurisdictions.set(Jurisdiction.objects.filter(code="eu"))

    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: "/accounts/login" not in url)
    page.goto(live_server.url + reverse("residency:project_residency", args=[org.slug, project.slug]))

    page.locator(".policy-form label", has_text="United States").locator("input").check()
    page.get_by_role("button", name="Save policy").click()
    page.wait_for_load_state()

    assert page.url.endswith("#policy-form")
    summary = page.locator(".error-summary")
    assert "The policy was not saved." in summary.inner_text()
    assert _in_viewport(page, ".error-summary"), "the error summary is out of sight"
    # The summary links to the field, whose own error is beside it.
    summary.get_by_role("link", name="Allowed jurisdictions").click()
    assert _in_viewport(page, ".checklist.field-invalid .error")
    assert not ResidencyPolicy.objects.filter(project=project).exists()
    context.close()
