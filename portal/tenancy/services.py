"""Writes that change organizations, memberships, invitations and projects.

Each takes the caller's `Access` (already checked by `portal.tenancy.access`), applies the rules
that depend on the data (last owner, duplicate invitation …), records an audit event in the same
transaction, and sends mail only after commit.
"""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from portal.audit.models import AuditAction
from portal.audit.services import audit_record, diff_fields
from portal.core.mail import mail_after_commit
from portal.lib.ratelimit import RateLimited, consume
from portal.tenancy.access import Access, Perm, require_verified_email
from portal.tenancy.models import (
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    Project,
    Role,
)


def unique_slug(name: str, *, queryset, fallback: str) -> str:
    base = slugify(name)[:40].strip("-") or fallback
    slug, n = base, 2
    while queryset.filter(slug=slug).exists():
        slug = f"{base}-{n}"
        n += 1
    return slug


@transaction.atomic
def organization_create(*, user, name: str, request: HttpRequest | None = None) -> Organization:
    require_verified_email(user)
    for _attempt in range(5):
        slug = unique_slug(name, queryset=Organization.objects, fallback="org")
        try:
            with transaction.atomic():
                org = Organization.objects.create(name=name, slug=slug, created_by=user)
            break
        except IntegrityError:  # someone took the slug between the check and the insert
            continue
    else:
        raise ValidationError("Could not find a free address for this name; try a slightly different one.")
    membership = Membership.objects.create(organization=org, user=user, role=Role.OWNER)
    audit_record(action=AuditAction.ORG_CREATED, actor=user, organization=org, target=org, request=request)
    audit_record(
        action=AuditAction.MEMBER_ADDED,
        actor=user,
        organization=org,
        target=membership,
        changes={"role": [None, Role.OWNER]},
        request=request,
    )
    return org


@transaction.atomic
def organization_update(*, access: Access, name: str, request: HttpRequest | None = None) -> Organization:
    access.require(Perm.ORG_EDIT)
    org = Organization.objects.select_for_update().get(pk=access.organization.pk)
    before = {"name": org.name}
    org.name = name
    changes = diff_fields(before, org, ["name"])
    if changes:
        org.save(update_fields=["name"])
        audit_record(
            action=AuditAction.ORG_UPDATED, organization=org, target=org, changes=changes, request=request
        )
    return org


@transaction.atomic
def project_create(
    *, access: Access, name: str, description: str = "", request: HttpRequest | None = None
) -> Project:
    access.require(Perm.PROJECT_CREATE)
    org = _lock_org(access.organization)  # two creates with one name must not pick the same slug
    project = Project(
        organization=org,
        name=name,
        description=description,
        slug=unique_slug(name, queryset=org.projects.all(), fallback="project"),
        created_by=access.membership.user,
    )
    project.apply_default_quotas()
    project.save()
    audit_record(
        action=AuditAction.PROJECT_CREATED,
        organization=org,
        project=project,
        target=project,
        changes={f: [None, getattr(project, f)] for f in Project.QUOTA_FIELDS},
        request=request,
    )
    return project


@transaction.atomic
def project_update(
    *, access: Access, name: str, description: str, request: HttpRequest | None = None
) -> Project:
    access.require(Perm.PROJECT_EDIT)
    project = Project.objects.select_for_update().get(pk=access.project.pk)
    before = {"name": project.name, "description": project.description}
    project.name, project.description = name, description
    changes = diff_fields(before, project, ["name", "description"])
    if changes:
        project.save(update_fields=["name", "description"])
        audit_record(
            action=AuditAction.PROJECT_UPDATED,
            organization=project.organization,
            project=project,
            target=project,
            changes=changes,
            request=request,
        )
    return project


@transaction.atomic
def project_delete(*, access: Access, request: HttpRequest | None = None) -> None:
    access.require(Perm.PROJECT_DELETE)
    project = access.project
    # Resources (instances, volumes) will block deletion once they exist: see the compute app.
    audit_record(
        action=AuditAction.PROJECT_DELETED,
        organization=project.organization,
        project=project,
        target=project,
        request=request,
    )
    project.delete()


# --- Members ----------------------------------------------------------------------------------


def _lock_org(org: Organization) -> Organization:
    """Serialise changes to one organization's members (the last-owner rule depends on it)."""
    return Organization.objects.select_for_update().get(pk=org.pk)


def _membership_or_error(org: Organization, membership_id: int) -> Membership:
    membership = Membership.objects.select_related("user").filter(organization=org, pk=membership_id).first()
    if membership is None:
        raise ValidationError("That person is no longer a member.")
    return membership


def _owner_count(org: Organization) -> int:
    return Membership.objects.filter(organization=org, role=Role.OWNER).count()


def _require_may_touch(access: Access, membership: Membership, new_role: str | None = None) -> None:
    if Role.OWNER in (membership.role, new_role) and not access.can(Perm.OWNERS_MANAGE):
        raise PermissionDenied("Only an owner can add, change or remove owners.")


@transaction.atomic
def membership_change_role(
    *, access: Access, membership_id: int, role: str, request: HttpRequest | None = None
) -> Membership:
    access.require(Perm.MEMBERS_MANAGE)
    org = _lock_org(access.organization)
    membership = _membership_or_error(org, membership_id)
    if membership.role == role:
        return membership
    _require_may_touch(access, membership, role)
    if membership.role == Role.OWNER and _owner_count(org) == 1:
        raise ValidationError("An organization needs at least one owner. Make someone else owner first.")
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        action=AuditAction.MEMBER_ROLE_CHANGED,
        organization=org,
        target=membership,
        changes={"role": [old, role]},
        request=request,
    )
    return membership


@transaction.atomic
def membership_remove(*, access: Access, membership_id: int, request: HttpRequest | None = None) -> None:
    leaving = access.membership.pk == membership_id
    if not leaving:  # giving up one's own access needs no permission (nor a verified address)
        access.require(Perm.MEMBERS_MANAGE)
    org = _lock_org(access.organization)
    membership = _membership_or_error(org, membership_id)
    if not leaving:
        _require_may_touch(access, membership)
    if membership.role == Role.OWNER and _owner_count(org) == 1:
        raise ValidationError(
            "An organization needs at least one owner. Make someone else owner before "
            + ("leaving." if leaving else "removing this one.")
        )
    audit_record(
        action=AuditAction.MEMBER_LEFT if leaving else AuditAction.MEMBER_REMOVED,
        organization=org,
        target=membership,
        changes={"role": [membership.role, None]},
        request=request,
    )
    membership.delete()


# --- Invitations ------------------------------------------------------------------------------


def _count_invitation_sent(access: Access) -> None:
    """Invitations are mail to arbitrary addresses: limit how many one person sends."""
    user = access.membership.user
    if not consume(f"invitations:user:{user.pk}", limit=settings.PORTAL_INVITATIONS_PER_HOUR, window=3600):
        raise RateLimited("You have sent a lot of invitations in the last hour. Please try again later.")


def _send_invitation(invitation: Invitation, token: str, request: HttpRequest | None) -> None:
    path = reverse("tenancy:invitation_accept", kwargs={"token": token})
    mail_after_commit(
        template="tenancy/email/invitation",
        to=[invitation.email],
        context={
            "invitation": invitation,
            "inviter": invitation.invited_by,
            "accept_url": request.build_absolute_uri(path) if request else path,
        },
    )


@transaction.atomic
def invitation_create(
    *, access: Access, email: str, role: str, request: HttpRequest | None = None
) -> Invitation:
    access.require(Perm.MEMBERS_MANAGE)
    if role == Role.OWNER:
        access.require(Perm.OWNERS_MANAGE)
    org = _lock_org(access.organization)
    email = email.strip().lower()
    if Membership.objects.filter(organization=org, user__email__iexact=email).exists():
        raise ValidationError(f"{email} is already a member of {org.name}.")
    pending = Invitation.objects.filter(organization=org, status=InvitationStatus.PENDING)
    if pending.filter(email__iexact=email).exists():
        raise ValidationError(f"{email} already has an invitation; resend it from the list instead.")
    if pending.count() >= settings.PORTAL_MAX_PENDING_INVITATIONS:
        raise ValidationError(
            "Too many invitations are waiting for an answer. Revoke some before sending more."
        )
    _count_invitation_sent(access)
    invitation = Invitation(organization=org, email=email, role=role, invited_by=access.membership.user)
    token = invitation.new_token()
    try:
        with transaction.atomic():
            invitation.save()
    except IntegrityError:  # a concurrent request invited the same address
        raise ValidationError(
            f"{email} already has an invitation; resend it from the list instead."
        ) from None
    audit_record(
        action=AuditAction.INVITATION_SENT,
        organization=org,
        target=invitation,
        changes={"role": [None, role]},
        request=request,
    )
    _send_invitation(invitation, token, request)
    return invitation


def _invitation_for_update(access: Access, invitation_id: int) -> Invitation:
    access.require(Perm.MEMBERS_MANAGE)
    invitation = (
        Invitation.objects.select_for_update()
        .filter(organization=access.organization, pk=invitation_id)
        .first()
    )
    if invitation is None:
        raise ValidationError("That invitation no longer exists.")
    if invitation.role == Role.OWNER:
        access.require(Perm.OWNERS_MANAGE)
    return invitation


@transaction.atomic
def invitation_resend(
    *, access: Access, invitation_id: int, request: HttpRequest | None = None
) -> Invitation:
    invitation = _invitation_for_update(access, invitation_id)
    if invitation.status != InvitationStatus.PENDING:
        raise ValidationError(f"This invitation was already {invitation.get_status_display().lower()}.")
    _count_invitation_sent(access)
    token = invitation.new_token()
    invitation.invited_by = access.membership.user
    invitation.save(update_fields=["token_hash", "sent_at", "expires_at", "invited_by"])
    audit_record(
        action=AuditAction.INVITATION_RESENT,
        organization=invitation.organization,
        target=invitation,
        request=request,
    )
    _send_invitation(invitation, token, request)
    return invitation


@transaction.atomic
def invitation_revoke(
    *, access: Access, invitation_id: int, request: HttpRequest | None = None
) -> Invitation:
    invitation = _invitation_for_update(access, invitation_id)
    if invitation.status == InvitationStatus.REVOKED:
        return invitation  # repeating a revoke changes nothing
    if invitation.status != InvitationStatus.PENDING:
        raise ValidationError("This invitation was already accepted; remove the member instead.")
    invitation.status = InvitationStatus.REVOKED
    invitation.save(update_fields=["status"])
    audit_record(
        action=AuditAction.INVITATION_REVOKED,
        organization=invitation.organization,
        target=invitation,
        request=request,
    )
    return invitation


class InvitationInvalid(Exception):
    """The link is unknown, expired, revoked or already used; the message says which."""


def invitation_for_token(token: str) -> Invitation:
    invitation = Invitation.objects.by_token(token).select_related("organization", "invited_by").first()
    if invitation is None:
        raise InvitationInvalid("This invitation link is not valid. Ask for a new invitation.")
    if invitation.status == InvitationStatus.REVOKED:
        raise InvitationInvalid("This invitation was withdrawn. Ask for a new invitation.")
    if invitation.status == InvitationStatus.ACCEPTED:
        raise InvitationInvalid("This invitation has already been used.")
    if invitation.is_expired:
        raise InvitationInvalid("This invitation has expired. Ask for a new one to be sent.")
    return invitation


def user_has_email(user, email: str) -> bool:
    return user.email.lower() == email.lower() or user.emailaddress_set.filter(email__iexact=email).exists()


@transaction.atomic
def invitation_accept(*, user, token: str, request: HttpRequest | None = None) -> Membership:
    invitation = invitation_for_token(token)
    invitation = Invitation.objects.select_for_update().select_related("organization").get(pk=invitation.pk)
    if not invitation.is_open:  # lost a race with another accept or a revoke
        raise InvitationInvalid("This invitation is no longer valid.")
    if not user_has_email(user, invitation.email):
        raise PermissionDenied(
            f"This invitation is for {invitation.email}, but you are signed in as {user.email}. "
            "Sign in with the invited address to accept it."
        )
    org = _lock_org(invitation.organization)
    membership, created = Membership.objects.get_or_create(
        organization=org, user=user, defaults={"role": invitation.role}
    )
    # Following the e-mailed link proves the invited address belongs to this user.
    EmailAddress.objects.filter(user=user, email__iexact=invitation.email).update(verified=True)
    invitation.status = InvitationStatus.ACCEPTED
    invitation.accepted_by = user
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["status", "accepted_by", "accepted_at"])
    audit_record(
        action=AuditAction.INVITATION_ACCEPTED,
        actor=user,
        organization=org,
        target=invitation,
        request=request,
    )
    if created:
        audit_record(
            action=AuditAction.MEMBER_ADDED,
            actor=user,
            organization=org,
            target=membership,
            changes={"role": [None, membership.role]},
            request=request,
        )
    return membership
