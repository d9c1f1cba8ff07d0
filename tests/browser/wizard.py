"""Submitting the launch wizard from a browser test."""

from __future__ import annotations

import re

import pytest


def choose_zone(page, zone) -> None:
    """Check a zone's radio and wait for the image and size cards drawn for it."""
    zone.check()
    page.locator(f"input[name=sections_zone][value='{zone.get_attribute('value')}']").wait_for(
        state="attached"
    )


def choose(page, zone, image: str, size: str) -> None:
    """Pick a zone (its radio), an image and a size as a customer would: each after the wizard
    has answered the one before, as a person sees the cards change for a new zone before picking
    from them. Then wait until the summary says what was picked."""
    choose_zone(page, zone)
    page.locator("#section-image").get_by_text(image, exact=True).click()
    page.locator("#section-size label", has_text=size).click()
    summary = page.locator("#launch-summary")
    summary.get_by_text(image, exact=True).wait_for()
    summary.get_by_text(re.compile(f"^{re.escape(size)} ·")).wait_for()


def launch_from_wizard(page, button: str) -> None:
    """Click the summary's launch button and wait for the server list. If the portal answers
    the launch with the wizard again, fail with its status and the messages it shows, not with a
    bare time-out waiting for a page that will never come."""
    with page.expect_navigation() as navigation:
        page.locator("#launch-summary").get_by_role("button", name=button).click()
    if not page.url.endswith("/servers/"):
        status = navigation.value.status if navigation.value else None
        shown = page.locator(".section-errors p, .section-errors .alert").all_inner_texts()
        chosen = page.evaluate(
            """() => [...new FormData(document.querySelector('#launch-form')).entries()]
                .filter(([k, v]) => k !== 'csrfmiddlewaretoken' && typeof v === 'string')
                .map(([k, v]) => `${k}=${v}`)"""
        )
        pytest.fail(f"the launch was answered {status}: {shown or 'no message'}; form: {chosen}")
