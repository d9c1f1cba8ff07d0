from __future__ import annotations

from django.conf import settings
from django.db.models import Exists, FilteredRelation, Q
from django.http import HttpRequest

from portal.tenancy.access import ROLE_PERMISSIONS, Access
from portal.tenancy.models import Role

_ACCESS_ATTR = "portal_access"


def remember_access(request: HttpRequest, access: Access) -> None:
    """Let the page frame reuse the access a view has just checked instead of querying it again.

    Only for this request: the next one checks again, so a changed role shows at once."""
    setattr(request, _ACCESS_ATTR, access)


def _checked_access(request: HttpRequest, user, url_kwargs: dict) -> Access | None:
    access = getattr(request, _ACCESS_ATTR, None)
    if (
        access is None
        or access.membership.user_id != user.pk
        or access.organization.slug != url_kwargs.get("org_slug")
    ):
        return None
    return access


def portal(request: HttpRequest) -> dict:
    """What the page frame needs: the organizations and projects for the header switchers.

    One query when the view left its checked access on the request (`remember_access`): the
    memberships, the projects of the organization in the URL joined to its row, and whether the
    sign-in address is confirmed (for the banner). Two when it did not."""
    context: dict = {"site_name": settings.SITE_NAME}
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return context
    match = getattr(request, "resolver_match", None)
    kwargs = match.kwargs if match else {}
    access = _checked_access(request, user, kwargs)
    verified = user.emailaddress_set.filter(email__iexact=user.email, verified=True)
    rows = user.memberships.select_related("organization").annotate(nav_email_verified=Exists(verified))
    if access is None:
        rows = rows.order_by("organization__name")
    else:
        rows = (
            rows.annotate(
                nav_project=FilteredRelation(
                    "organization__projects",
                    condition=Q(organization__projects__organization=access.organization.pk),
                )
            )
            .select_related("nav_project")
            .order_by("organization__name", "organization_id", "nav_project__name")
        )
    rows = list(rows)
    # One row per membership, except the current organization's: one per project, adjacent.
    memberships = []
    for row in rows:
        if not memberships or memberships[-1].pk != row.pk:
            memberships.append(row)
    context["nav_memberships"] = memberships
    context["nav_email_verified"] = rows[0].nav_email_verified if rows else user.has_verified_email
    current = next((m for m in memberships if m.organization.slug == kwargs.get("org_slug")), None)
    if current is not None:
        context["nav_org"] = current.organization
        context["nav_role"] = current.get_role_display()
        # What the navigation may offer: links a role can't use are not shown.
        context["nav_perms"] = {perm.value for perm in ROLE_PERMISSIONS[Role(current.role)]}
        if access is None:
            projects = list(current.organization.projects.all())
        else:
            # A row whose join found no project has no `nav_project` attribute at all.
            projects = [row.nav_project for row in rows if getattr(row, "nav_project", None) is not None]
            for project in projects:
                project.organization = current.organization
        context["nav_projects"] = projects
        context["nav_project"] = next((p for p in projects if p.slug == kwargs.get("project_slug")), None)
    return context
