"""A newcomer's first minutes, in a real browser against a live server:
sign up → confirm the e-mail → name the organization → first project → invite a teammate →
the teammate signs up from the invitation and joins with the chosen role."""

from __future__ import annotations

import re

import pytest

from portal.tenancy.models import Membership, Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-pass-phrase-2026"


def _link(mail, pattern: str) -> str:
    match = re.search(pattern, mail.body)
    assert match, mail.body
    return match.group(0)


def test_newcomer_sets_up_an_organization_and_brings_a_teammate(live_server, new_page, shoot, mailoutbox):
    page = new_page()
    page.goto(live_server.url)
    shoot(page, "01-landing")
    page.get_by_role("link", name="Create an account").click()
    page.fill("input[name=email]", "founder@example.com")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    shoot(page, "02-signup")
    page.get_by_role("button", name="Sign Up").click()

    # Signed in but unconfirmed: onboarding is visible, creating is not possible yet.
    page.wait_for_url("**/orgs/new/")
    assert page.get_by_text("confirm your e-mail address").first.is_visible()
    assert page.get_by_role("button", name="Create organization").is_disabled()
    shoot(page, "03-unverified")

    confirm = _link(mailoutbox[-1], r"https?://\S+/accounts/confirm-email/\S+/")
    page.goto(confirm)
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("You have confirmed").wait_for()  # before the next navigation could cancel it

    page.goto(live_server.url)
    page.wait_for_url("**/orgs/new/")
    page.fill("input[name=name]", "Founders Inc")
    shoot(page, "04-onboarding-organization")
    page.get_by_role("button", name="Create organization").click()
    page.wait_for_url("**/projects/new/?welcome=1")
    page.fill("input[name=name]", "Production")
    shoot(page, "05-onboarding-project")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url("**/o/founders-inc/p/production/")
    assert page.get_by_role("heading", name="Production").is_visible()
    shoot(page, "06-project-dashboard")

    page.get_by_role("link", name="Members", exact=True).click()
    page.fill("input[name=email]", "teammate@example.com")
    page.select_option("select[name=role]", Role.ADMIN)
    page.get_by_role("button", name="Send invitation").click()
    assert page.get_by_text("Invitation sent to teammate@example.com").is_visible()
    shoot(page, "07-members-invited")

    invitation = mailoutbox[-1]
    assert invitation.to == ["teammate@example.com"]
    link = _link(invitation, r"https?://\S+/invitations/\S+/")

    teammate = new_page()
    teammate.goto(link)
    shoot(teammate, "08-invitation")
    teammate.locator("#main").get_by_role("link", name="Create account").click()
    teammate.fill("input[name=email]", "teammate@example.com")
    teammate.fill("input[name=password1]", PASSWORD)
    teammate.fill("input[name=password2]", PASSWORD)
    teammate.get_by_role("button", name="Sign Up").click()
    teammate.get_by_role("button", name="Accept and join").click()
    teammate.wait_for_url("**/o/founders-inc/")
    assert teammate.get_by_text("You joined as Admin").is_visible()
    shoot(teammate, "09-teammate-joined")

    membership = Membership.objects.get(user__email="teammate@example.com")
    assert (membership.organization.name, membership.role) == ("Founders Inc", Role.ADMIN)
    assert not page.csp_violations and not teammate.csp_violations
