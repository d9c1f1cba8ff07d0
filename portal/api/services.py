"""Writes for API tokens: create (the secret is returned once), revoke. Both audited."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from portal.api.models import ApiToken, TokenScope
from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.tenancy.access import Access, Perm, require_verified_email
from portal.tenancy.models import Project

LIFETIME_CHOICES = (7, 30, 90)


class TokenRefused(Exception):
    """The token can't be created as asked; `field` names the form field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def lifetime_choices() -> list[int]:
    return [d for d in LIFETIME_CHOICES if d <= settings.PORTAL_API_TOKEN_MAX_DAYS] or [
        settings.PORTAL_API_TOKEN_MAX_DAYS
    ]


def token_create(
    *,
    access: Access,
    name: str,
    scope: str,
    billing: bool,
    days: int,
    project: Project | None = None,
    request: HttpRequest | None = None,
) -> tuple[ApiToken, str]:
    """A token for the signed-in member in `access.organization`; returns it and its secret."""
    user = access.membership.user
    require_verified_email(user)
    name = (name or "").strip()
    if not name:
        raise TokenRefused("Give the token a name, e.g. the program that will use it.", "name")
    if days not in lifetime_choices():
        raise TokenRefused("Choose one of the lifetimes offered.", "days")
    if project is not None and project.organization_id != access.organization.pk:
        raise TokenRefused("Choose one of the organization's projects.", "project")
    if scope == TokenScope.READ_WRITE and not access.can(Perm.RESOURCE_OPERATE):
        raise TokenRefused(
            f"Your role in {access.organization.name} is {access.role.label}: a read-write token could "
            "not change anything. Choose read only.",
            "scope",
        )
    token = ApiToken(
        user=user,
        organization=access.organization,
        project=project,
        name=name[:80],
        scope=TokenScope(scope),
        billing=billing,
        expires_at=timezone.now() + timedelta(days=days),
    )
    secret = token.set_secret()
    with transaction.atomic():
        token.save()
        audit_record(
            action=AuditAction.API_TOKEN_CREATED,
            organization=access.organization,
            project=project,
            target=token,
            changes={
                "scope": [None, token.get_scope_display() + (" + billing" if billing else "")],
                "project": [None, project.name if project else "all projects"],
                "expires": [None, f"{token.expires_at:%Y-%m-%d}"],
            },
            actor=user,
            request=request,
        )
    return token, secret


def token_revoke(*, access: Access, token: ApiToken, request: HttpRequest | None = None) -> ApiToken:
    """Stop a token at once. Its owner may revoke it, and so may whoever manages the members
    (owners, admins) — for a token that leaked or belongs to someone who left. Revoking twice is a no-op."""
    user = access.membership.user
    if token.user_id != user.pk:
        access.require(Perm.MEMBERS_MANAGE)
    with transaction.atomic():
        locked = ApiToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is not None:
            return locked
        locked.revoked_at = timezone.now()
        locked.revoked_by = user
        locked.save(update_fields=["revoked_at", "revoked_by"])
        audit_record(
            action=AuditAction.API_TOKEN_REVOKED,
            organization=access.organization,
            project=locked.project,
            target=locked,
            changes={"owner": [locked.user.email, None]} if locked.user_id != user.pk else {},
            actor=user,
            request=request,
        )
    return locked
