"""A server with addresses from the operator's pools: its page shows the IPv4 and the IPv6 address,
and the long IPv6 one still fits a phone's width."""

from __future__ import annotations

import pytest

from tests.browser.pages import look, owner_page

pytestmark = pytest.mark.browser

__all__ = ["owner_page"]  # the fixture


def test_the_server_page_shows_both_addresses_and_fits_a_phone(owner_page, tmp_path, shoot):
    from tests.factories import InstanceFactory

    page, project = owner_page, owner_page.project
    instance = InstanceFactory(
        project=project, name="mail-1", addresses=["203.0.113.25", "2001:db8:10:ffff:ffff:ffff:ffff:fffe"]
    )
    page.goto(page.base + instance.get_absolute_url())
    page.get_by_text("IPv6 address").wait_for()
    assert page.locator("code.copyable", has_text="2001:db8:10:ffff:ffff:ffff:ffff:fffe").is_visible()
    look(page, tmp_path, "server-addresses", ".card")
    shoot(page, "113-server-ipv6")
    page.set_viewport_size({"width": 390, "height": 844})
    shoot(page, "113-server-ipv6-mobile")
    assert not page.csp_violations
