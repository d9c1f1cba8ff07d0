"""Sign-up, e-mail confirmation and onboarding, driven through the pages a newcomer sees."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.accounts.models import User
from portal.tenancy.models import Membership, Organization, Project, Role
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

NEW_EMAIL = "grace@example.com"
CONFIRM_LINK = re.compile(r"https?://[^\s\"'<>]+/accounts/confirm-email/[^\s\"'<>]+/")


def _signup(client, django_capture_on_commit_callbacks, email: str = NEW_EMAIL):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(
            reverse("account_signup"), {"email": email, "password1": PASSWORD, "password2": PASSWORD}
        )


def _confirm_link(message) -> str:
    match = CONFIRM_LINK.search(message.body)
    assert match, f"no confirmation link in the mail:\n{message.body}"
    return match.group(0)


def test_signup_confirm_onboard_and_create_first_project(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    response = _signup(client, django_capture_on_commit_callbacks)

    assert response.status_code == 302
    user = User.objects.get(email=NEW_EMAIL)
    assert not user.has_verified_email
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == [NEW_EMAIL]
    assert mail.subject.startswith("[Nimbus Cloud]")
    link = _confirm_link(mail)

    # GET only shows the confirmation page (ACCOUNT_CONFIRM_EMAIL_ON_GET is off) ...
    page = client.get(link)
    assert page.status_code == 200
    assert NEW_EMAIL in page.content.decode()
    assert not User.objects.get(pk=user.pk).has_verified_email
    # ... and the POST confirms.
    confirmed = client.post(link)
    assert confirmed.status_code == 302
    assert User.objects.get(pk=user.pk).has_verified_email

    # Home sends a user without organizations to onboarding.
    home = client.get("/", follow=True)
    assert home.redirect_chain[-1][0] == reverse("tenancy:org_create")
    assert home.status_code == 200
    assert "Name your organization" in home.content.decode()
    assert "confirm your e-mail address" not in home.content.decode()

    created = client.post(reverse("tenancy:org_create"), {"name": "Grace Labs"})
    org = Organization.objects.get(name="Grace Labs")
    assert Membership.objects.get(organization=org, user=user).role == Role.OWNER
    project_create_url = reverse("tenancy:project_create", kwargs={"org_slug": org.slug})
    assert created.status_code == 302
    assert created["Location"].startswith(project_create_url)

    step_two = client.get(created["Location"])
    assert step_two.status_code == 200
    assert "Create your first project" in step_two.content.decode()

    made = client.post(project_create_url, {"name": "Web shop", "description": "Our storefront"})
    project = Project.objects.get(organization=org, name="Web shop")
    assert made.status_code == 302
    assert made["Location"] == project.get_absolute_url()

    dashboard = client.get(made["Location"])
    body = dashboard.content.decode()
    assert dashboard.status_code == 200
    assert "Web shop" in body
    assert "Our storefront" in body
    assert "Project Web shop created." in body

    # Coming back later lands on the organization, not on onboarding again.
    again = client.get("/")
    assert again.status_code == 302
    assert again["Location"] == org.get_absolute_url()


def test_verification_mail_names_the_site(client, mailoutbox, django_capture_on_commit_callbacks):
    """allauth's mail templates greet with `current_site.name`; an empty name reads "Hello from !"."""
    _signup(client, django_capture_on_commit_callbacks)

    body = mailoutbox[0].body
    assert "Hello from !" not in body, f"the mail does not say who it is from:\n{body}"
    assert "Thank you for using !" not in body, body
    assert re.search(r"Hello from \S", body), body


def test_confirmation_link_from_another_browser_still_needs_a_post(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    """Mail scanners that prefetch links must not confirm the address."""
    _signup(client, django_capture_on_commit_callbacks)
    link = _confirm_link(mailoutbox[0])

    from django.test import Client

    scanner = Client()
    assert scanner.get(link).status_code == 200
    assert not User.objects.get(email=NEW_EMAIL).has_verified_email


def test_unverified_user_cannot_create_an_organization(client_as):
    user = UserFactory(verified=False)
    client = client_as(user)

    page = client.get(reverse("tenancy:org_create"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "confirm your e-mail address" in body
    assert user.email in body

    response = client.post(reverse("tenancy:org_create"), {"name": "Sneaky Org"})
    assert response.status_code == 403
    assert "confirm your e-mail address" in response.content.decode()
    assert not Organization.objects.filter(name="Sneaky Org").exists()
    assert not Membership.objects.filter(user=user).exists()


def test_unverified_owner_cannot_create_a_project(client_as):
    org = OrganizationFactory(name="Pending Inc", slug="pending")
    user = MembershipFactory(organization=org, role=Role.OWNER, user=UserFactory(verified=False)).user
    client = client_as(user)
    url = reverse("tenancy:project_create", kwargs={"org_slug": org.slug})

    response = client.post(url, {"name": "Sneaky project"})

    assert response.status_code == 403
    assert "confirm your e-mail address" in response.content.decode()
    assert not Project.objects.filter(organization=org).exists()


@pytest.mark.parametrize("email", ["owner@example.com", "Owner@Example.COM"])
def test_signup_with_an_existing_email_does_not_create_a_second_account(
    client, owner, mailoutbox, django_capture_on_commit_callbacks, email
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("account_signup"),
            {"email": email, "password1": "another-Password-77", "password2": "another-Password-77"},
        )

    # The form comes back with an error (ACCOUNT_EMAIL_VERIFICATION="optional" means allauth
    # says so openly instead of mailing the owner).
    assert response.status_code == 200
    assert "already registered" in response.content.decode()
    assert mailoutbox == []
    assert User.objects.filter(email__iexact="owner@example.com").count() == 1
    # The existing account keeps its password: nobody takes it over by signing up again.
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)
    assert not owner.check_password("another-Password-77")
    # The newcomer is not signed in as the existing owner.
    assert client.get(reverse("profile")).status_code == 302
