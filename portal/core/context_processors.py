from __future__ import annotations

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db.models import Exists, OuterRef
from django.http import HttpRequest

from portal.tenancy.access import ROLE_PERMISSIONS
from portal.tenancy.models import Role


def portal(request: HttpRequest) -> dict:
    """What the page frame needs: the organizations and projects for the header switchers, and
    whether the sign-in address is confirmed (for the banner). Read on every request, so a new
    organization, a rename or a changed role shows on the next page."""
    context: dict = {"site_name": settings.SITE_NAME}
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return context
    match = getattr(request, "resolver_match", None)
    kwargs = match.kwargs if match else {}
    # The banner's answer rides along with the memberships: one query instead of two on every page.
    verified = EmailAddress.objects.filter(user=OuterRef("user"), email__iexact=user.email, verified=True)
    memberships = list(
        user.memberships.select_related("organization")
        .annotate(email_verified=Exists(verified))
        .order_by("organization__name")
    )
    context["nav_memberships"] = memberships
    context["nav_email_verified"] = memberships[0].email_verified if memberships else user.has_verified_email
    current = next((m for m in memberships if m.organization.slug == kwargs.get("org_slug")), None)
    if current is not None:
        context["nav_org"] = current.organization
        context["nav_role"] = current.get_role_display()
        # What the navigation may offer: links a role can't use are not shown.
        context["nav_perms"] = {perm.value for perm in ROLE_PERMISSIONS[Role(current.role)]}
        context["nav_projects"] = list(current.organization.projects.all())
        context["nav_project"] = next(
            (p for p in context["nav_projects"] if p.slug == kwargs.get("project_slug")), None
        )
    return context
