from __future__ import annotations

import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.tenancy.models import Invitation, InvitationStatus, Membership, Role
from tests.factories import UserFactory

LINK = re.compile(r"https?://[^/\s]+(/invitations/[^/\s]+/)")


def _invite(client, org, email, role=Role.MEMBER, capture=None):
    url = reverse("tenancy:invitation_create", kwargs={"org_slug": org.slug})
    with capture(execute=True):
        return client.post(url, {"email": email, "role": role})


def _link(mail) -> str:
    match = LINK.search(mail.body)
    assert match, mail.body
    return match.group(1)


@pytest.fixture
def invite(owner, org, client_as, django_capture_on_commit_callbacks, mailoutbox):
    def send(email, role=Role.MEMBER):
        response = _invite(client_as(owner), org, email, role, django_capture_on_commit_callbacks)
        assert response.status_code == 302, response.content.decode()[:500]
        return _link(mailoutbox[-1])

    return send


def test_invitation_email_names_the_organization_role_and_inviter(invite, mailoutbox, owner):
    invite("new@example.com", Role.ADMIN)
    mail = mailoutbox[-1]
    assert mail.to == ["new@example.com"]
    assert "Acme Research" in mail.subject and owner.name in mail.subject
    assert "as Admin" in mail.body
    assert mail.alternatives and "Accept the invitation" in mail.alternatives[0][0]
    assert AuditEvent.objects.filter(action="invitation.sent").count() == 1


def test_new_user_signs_up_from_the_invitation_and_joins_with_the_role(
    invite, org, client, django_capture_on_commit_callbacks, mailoutbox
):
    link = invite("newcomer@example.com", Role.VIEWER)
    page = client.get(link)
    assert page.status_code == 200 and b"Create account" in page.content

    with django_capture_on_commit_callbacks(execute=True):
        signup = client.post(
            reverse("account_signup") + f"?next={link}",
            {
                "email": "newcomer@example.com",
                "password1": "a-long-pass-phrase-1",
                "password2": "a-long-pass-phrase-1",
            },
        )
    assert signup.status_code == 302
    # Opening the e-mailed link proved the address: no separate verification needed.
    assert EmailAddress.objects.get(email="newcomer@example.com").verified
    accept_page = client.get(link)
    assert b"Accept and join" in accept_page.content
    response = client.post(link)
    assert response.status_code == 302 and response["Location"] == org.get_absolute_url()
    membership = Membership.objects.get(organization=org, user__email="newcomer@example.com")
    assert membership.role == Role.VIEWER
    assert Invitation.objects.get().status == InvitationStatus.ACCEPTED
    assert set(AuditEvent.objects.values_list("action", flat=True)) >= {"invitation.accepted", "member.added"}


def test_existing_user_signs_in_and_accepts(invite, org, client):
    existing = UserFactory(email="known@example.com")
    link = invite("Known@Example.com", Role.MEMBER)
    page = client.get(link)
    assert b"Sign in to accept" in page.content
    client.force_login(existing)
    assert client.post(link).status_code == 302
    assert Membership.objects.get(organization=org, user=existing).role == Role.MEMBER


def test_accepting_twice_changes_nothing(invite, org, client):
    existing = UserFactory(email="twice@example.com")
    link = invite("twice@example.com")
    client.force_login(existing)
    client.post(link)
    again = client.post(link)
    assert again.status_code == 404
    assert b"already been used" in again.content
    assert Membership.objects.filter(organization=org, user=existing).count() == 1


def test_signed_in_as_someone_else_cannot_accept(invite, org, client):
    link = invite("right@example.com")
    client.force_login(UserFactory(email="wrong@example.com"))
    page = client.get(link)
    assert page.status_code == 403 and b"right@example.com" in page.content
    response = client.post(link)
    assert response.status_code == 403
    assert not Membership.objects.filter(organization=org, user__email="wrong@example.com").exists()


def test_expired_invitation_is_refused(invite, org, client):
    link = invite("late@example.com")
    Invitation.objects.filter(email="late@example.com").update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    client.force_login(UserFactory(email="late@example.com"))
    response = client.post(link)
    assert response.status_code == 404 and b"expired" in response.content
    assert not Membership.objects.filter(organization=org, user__email="late@example.com").exists()


def test_revoked_invitation_is_refused_and_revoking_again_is_a_noop(invite, org, owner, client_as, client):
    link = invite("gone@example.com")
    invitation = Invitation.objects.get(email="gone@example.com")
    url = reverse("tenancy:invitation_revoke", kwargs={"org_slug": org.slug, "invitation_id": invitation.pk})
    owner_client = client_as(owner)
    assert owner_client.post(url).status_code == 302
    assert owner_client.post(url).status_code == 302
    assert AuditEvent.objects.filter(action="invitation.revoked").count() == 1
    client.force_login(UserFactory(email="gone@example.com"))
    response = client.post(link)
    assert response.status_code == 404 and b"withdrawn" in response.content


def test_unknown_token_is_a_clear_404(db, client):
    response = client.get(reverse("tenancy:invitation_accept", kwargs={"token": "not-a-real-token"}))
    assert response.status_code == 404 and b"not valid" in response.content


def test_resend_rotates_the_link(
    invite, org, owner, client_as, django_capture_on_commit_callbacks, mailoutbox, client
):
    first = invite("again@example.com")
    invitation = Invitation.objects.get(email="again@example.com")
    url = reverse("tenancy:invitation_resend", kwargs={"org_slug": org.slug, "invitation_id": invitation.pk})
    with django_capture_on_commit_callbacks(execute=True):
        assert client_as(owner).post(url).status_code == 302
    second = _link(mailoutbox[-1])
    assert second != first
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200


def test_inviting_a_member_or_a_pending_address_is_refused(
    invite, org, owner, member, client_as, django_capture_on_commit_callbacks, mailoutbox
):
    invite("pending@example.com")
    sent = len(mailoutbox)
    client = client_as(owner)
    dup = _invite(client, org, "PENDING@example.com", capture=django_capture_on_commit_callbacks)
    assert dup.status_code == 400 and b"already has an invitation" in dup.content
    existing = _invite(client, org, member.email, capture=django_capture_on_commit_callbacks)
    assert existing.status_code == 400 and b"already a member" in existing.content
    bad = _invite(client, org, "not-an-address", capture=django_capture_on_commit_callbacks)
    assert bad.status_code == 400 and b"valid email" in bad.content
    assert len(mailoutbox) == sent
    assert Invitation.objects.count() == 1


def test_admin_cannot_invite_an_owner(
    org, admin_user, client_as, django_capture_on_commit_callbacks, mailoutbox
):
    response = _invite(
        client_as(admin_user), org, "boss@example.com", Role.OWNER, django_capture_on_commit_callbacks
    )
    assert response.status_code == 400
    assert not Invitation.objects.exists() and not mailoutbox


def test_mail_is_not_sent_when_the_transaction_rolls_back(org, owner, mailoutbox):
    from django.db import transaction

    from portal.tenancy import services
    from portal.tenancy.access import org_access

    access = org_access(owner, org.slug)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.invitation_create(access=access, email="rollback@example.com", role=Role.MEMBER)
        raise RuntimeError("something later failed")
    assert not Invitation.objects.exists()
    assert not mailoutbox


def test_text_mail_is_not_html_escaped(org, owner, client_as, django_capture_on_commit_callbacks, mailoutbox):
    org.name = "Smith & O'Brien"
    org.save()
    _invite(client_as(owner), org, "plain@example.com", capture=django_capture_on_commit_callbacks)
    mail = mailoutbox[-1]
    assert "Smith & O'Brien" in mail.subject and "Smith & O'Brien" in mail.body
    assert "&amp;" in mail.alternatives[0][0]  # the HTML part is escaped, as it must be


def test_overlong_address_is_a_400_not_a_500(org, owner, client_as, django_capture_on_commit_callbacks):
    address = "a" * 250 + "@example.com"
    response = _invite(client_as(owner), org, address, capture=django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert not Invitation.objects.exists()


def test_invitations_per_person_are_rate_limited(
    org, owner, client_as, settings, django_capture_on_commit_callbacks, mailoutbox
):
    settings.PORTAL_INVITATIONS_PER_HOUR = 3
    client = client_as(owner)
    statuses = [
        _invite(client, org, f"p{i}@example.com", capture=django_capture_on_commit_callbacks).status_code
        for i in range(5)
    ]
    assert statuses == [302, 302, 302, 429, 429]
    assert len(mailoutbox) == 3 and Invitation.objects.count() == 3


def test_admin_is_not_offered_owner_invitation_controls(org, owner, admin_user, client_as, invite):
    invite("future-owner@example.com", Role.OWNER)
    invitation = Invitation.objects.get(email="future-owner@example.com")
    page = (
        client_as(admin_user).get(reverse("tenancy:members", kwargs={"org_slug": org.slug})).content.decode()
    )
    assert "Only owners can change this" in page
    assert (
        reverse("tenancy:invitation_revoke", kwargs={"org_slug": org.slug, "invitation_id": invitation.pk})
        not in page
    )
    url = reverse("tenancy:invitation_revoke", kwargs={"org_slug": org.slug, "invitation_id": invitation.pk})
    assert client_as(admin_user).post(url).status_code == 403


def test_an_invitation_opened_before_signing_in_as_someone_else_does_not_trap_home(invite, org, client):
    link = invite("someone@example.com")
    client.get(link)  # signed out: remembered for after sign-in
    client.force_login(UserFactory(email="different@example.com"))
    first = client.get("/")
    assert first.status_code == 302 and first["Location"] == link
    assert client.get(link).status_code == 403
    assert client.get("/")["Location"] != link  # home works again


def test_already_a_member_is_told_the_role_stays(invite, org, client):
    link = invite("joined-meanwhile@example.com", Role.ADMIN)
    member = UserFactory(email="joined-meanwhile@example.com")
    Membership.objects.create(organization=org, user=member, role=Role.MEMBER)  # e.g. added by another admin
    client.force_login(member)
    response = client.post(link, follow=True)
    assert "your role stays Member" in response.content.decode()
    assert Membership.objects.get(organization=org, user=member).role == Role.MEMBER


class _RefusingMailServer:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        import smtplib

        raise smtplib.SMTPServerDisconnected("the mail server went away")


def test_a_mail_server_failure_does_not_fail_the_request_nor_lose_the_mail(
    org, owner, client_as, settings, django_capture_on_commit_callbacks, mailoutbox
):
    from portal.core.mail import outbox_send_due
    from portal.core.models import OutboxMessage

    settings.MAILERS = {"default": {"BACKEND": f"{__name__}._RefusingMailServer"}}
    response = _invite(
        client_as(owner), org, "patient@example.com", capture=django_capture_on_commit_callbacks
    )
    assert response.status_code == 302
    assert Invitation.objects.filter(email="patient@example.com").exists()
    waiting = OutboxMessage.objects.get(to=["patient@example.com"])
    assert waiting.sent_at is None and waiting.attempts == 1 and "went away" in waiting.last_error

    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    # An operator's "try again now" in admin (instead of waiting out the backoff).
    OutboxMessage.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
    assert outbox_send_due() == 1  # what the beat task does
    assert mailoutbox[-1].to == ["patient@example.com"]
    assert "/invitations/" in mailoutbox[-1].body
    assert outbox_send_due() == 0  # sent once


def test_a_change_that_committed_is_answered_even_with_mail_and_broker_down(
    org, owner, client_as, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    from portal.core.models import OutboxMessage

    def refuse(*args, **kwargs):
        raise OperationalError("[Errno 111] Connection refused")

    # Nothing about mail may need the broker: any task sent would be refused.
    monkeypatch.setattr("celery.app.task.Task.apply_async", refuse)
    settings.MAILERS = {"default": {"BACKEND": f"{__name__}._RefusingMailServer"}}
    response = _invite(client_as(owner), org, "later@example.com", capture=django_capture_on_commit_callbacks)
    assert response.status_code == 302
    assert OutboxMessage.objects.filter(to=["later@example.com"], sent_at=None).exists()
