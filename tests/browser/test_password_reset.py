"""Root password reset in Chromium on the simulated cloud: the customer opens "Reset root
password…" on the server page (it asks once more: the current password stops working), confirms,
and sees the new password once, in a box that says it will not be shown again, with a Copy button
(static/js/copy.js, no inline script); the guest takes root with it, and a reload shows it no more.

Walked at 1366 px and at 390 px (no step may scroll sideways); shots docs/screenshots/120 (laptop)
and 121 (phone)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.compute.models import Instance
from tests.browser.pages import fitting_shots, owner_page  # noqa: F401 (a fixture)
from tests.browser.test_rescue import _running_server
from tests.compute.test_password_reset import _log_in

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(
    ("width", "shot"), [(1366, "120-password-reset"), (390, "121-password-reset")], ids=["laptop", "phone"]
)
def test_reset_the_root_password_and_see_it_once(owner_page, knobs, shoot, width, shot):  # noqa: F811
    page, take = owner_page, fitting_shots(shoot, "" if width > 400 else "-mobile")
    page.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=page.base)
    server = _running_server(page)
    org, project = page.project.organization, page.project
    page.goto(page.base + reverse("compute:instance_detail", args=[org.slug, project.slug, server.pk]))

    card = page.locator("#root-password")
    card.locator("summary", has_text="Reset root password…").click()
    panel = card.locator(".confirm-panel")
    assert "The current root password stops working at once" in panel.inner_text()
    panel.get_by_role("button", name="Reset root password").click()

    box = page.locator(".new-password")
    box.wait_for()
    assert "it will not be shown again" in box.inner_text()
    password = page.locator("#new-root-password").inner_text()
    assert re.fullmatch(r"[A-Za-z2-9]{24}", password)
    copy = box.get_by_role("button", name="Copy")
    copy.click()
    box.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == password
    box.scroll_into_view_if_needed()
    take(page, shot)
    assert not page.csp_violations

    assert b"root@web-shop-1:~$ " in _log_in(server.backend_id, "root", password)
    page.goto(page.url.split("#")[0].replace("/password/", "/"))  # the server page again
    assert page.locator("#root-password").is_visible() and page.locator(".new-password").count() == 0
    assert password not in page.content()
    assert Instance.objects.get(pk=server.pk).status == "running"
