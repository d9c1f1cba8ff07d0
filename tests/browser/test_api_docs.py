"""The API docs page (/api/v1/docs, Swagger UI from vendored files) in Chromium under the site's
Content-Security-Policy, and a token created through the tokens page then used from the docs page."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.api.models import ApiToken
from portal.catalog.demo import load_demo_catalog
from portal.tenancy.models import Role
from tests.api.world import build_world
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser


def _sign_in(page, live_server, email: str) -> None:
    page.goto(live_server.url + reverse("account_login"))
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: "/accounts/login" not in url)


def test_docs_page_lists_the_endpoints_without_a_token(live_server, new_page, shoot):
    page = new_page()
    response = page.goto(live_server.url + "/api/v1/docs")
    assert response.status == 200
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    page.locator(".opblock-tag-section").first.wait_for()
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock-tag-section").count() >= 8  # one per router: projects, catalog, …
    assert page.locator(".opblock-summary-path", has_text="/api/v1/instances").count() >= 2
    assert page.get_by_role("button", name="Authorize").is_visible()
    shoot(page, "50-api-docs")
    assert not page.csp_violations


def test_token_created_in_the_browser_works_from_the_docs_page(live_server, new_page, shoot):
    load_demo_catalog()
    org = OrganizationFactory(name="Acme Research", slug="acme")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="dana@example.com", name="Dana Smith")
    ).user
    project = ProjectFactory(organization=org, name="Web shop", slug="web-shop")
    build_world(project)

    page = new_page()
    _sign_in(page, live_server, owner.email)
    page.goto(live_server.url + reverse("api:tokens", args=[org.slug]))
    page.fill("input[name=name]", "autoscaler")
    page.get_by_text("Read and write", exact=True).click()
    page.get_by_text("90 days", exact=True).click()
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#token-secret").inner_text().strip()
    assert re.fullmatch(r"npt_[\w-]{40}", secret)
    token = ApiToken.objects.get(organization=org, name="autoscaler")
    assert (token.user, token.scope) == (owner, "read_write")
    shoot(page, "51-api-token-created")
    assert not page.csp_violations

    # From the token page to the docs page: authorize with the new token and list the servers.
    page.get_by_role("link", name="API reference").click()
    page.wait_for_url("**/api/v1/docs")
    page.get_by_role("button", name="Authorize").first.click()
    page.get_by_label("auth-bearer-value").fill(secret)
    page.get_by_role("button", name="Apply credentials").click()
    page.locator(".auth-btn-wrapper .btn-done").click()
    listing = page.locator(".opblock-get").filter(has_text="List servers")
    listing.locator(".opblock-summary").click()
    listing.get_by_role("button", name="Try it out").click()
    listing.get_by_role("button", name="Execute").click()
    listing.locator(".live-responses-table .response-col_status", has_text="200").wait_for()
    assert "app-1" in listing.locator(".live-responses-table .highlight-code").inner_text()
    assert not page.csp_violations
