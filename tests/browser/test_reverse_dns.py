"""Reverse DNS in Chromium on the simulated cloud: on a running server's page the customer types a
name that is not a host name and sees every problem beside the field, the page opening there
(nothing saved), then a proper
name, which the card shows as the server's PTR name after the page comes back.

Walked at 1366 px and at 390 px (no step may scroll sideways); shots docs/screenshots/95-96, the
phone's with a -mobile suffix."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from portal.compute.models import Instance
from tests.browser.pages import fitting_shots, owner_page  # noqa: F401 (a fixture)
from tests.browser.test_rescue import _running_server

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("width", "suffix"), [(1366, ""), (390, "-mobile")], ids=["laptop", "phone"])
def test_set_a_reverse_dns_name(owner_page, knobs, shoot, width, suffix):  # noqa: F811
    page, take = owner_page, fitting_shots(shoot, suffix)
    page.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
    server = _running_server(page)
    org, project = page.project.organization, page.project
    page.goto(page.base + reverse("compute:instance_detail", args=[org.slug, project.slug, server.pk]))

    card = page.locator("#reverse-dns")
    assert server.public_address in card.inner_text() and "None set." in card.inner_text()
    card.get_by_label("Host name").fill("-shop_1.example")
    card.get_by_role("button", name="Save").click()
    errors = page.locator("#reverse-dns-errors")
    errors.wait_for()
    text = errors.inner_text()
    assert "'-shop_1'" in text and "1 to 63 letters" in text
    assert page.locator("#reverse-dns").get_by_label("Host name").input_value() == "-shop_1.example"
    assert Instance.objects.get(pk=server.pk).reverse_dns == ""
    # The answer opens at the card, where the customer typed, not at the top of a long page.
    expect(page.locator("#reverse-dns-errors")).to_be_in_viewport()
    take(page, "95-reverse-dns-refused")

    page.locator("#reverse-dns").get_by_label("Host name").fill("Shop-1.Example.com.")
    page.locator("#reverse-dns").get_by_role("button", name="Save").click()
    page.locator("#reverse-dns strong", has_text="shop-1.example.com").wait_for()
    assert page.locator("#reverse-dns-errors").count() == 0
    assert Instance.objects.get(pk=server.pk).reverse_dns == "shop-1.example.com"
    page.locator("#reverse-dns").scroll_into_view_if_needed()
    take(page, "96-reverse-dns-set")
