from __future__ import annotations

from typing import NamedTuple

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db.models import Exists, FilteredRelation, Q, QuerySet, Value
from django.db.models.functions import Upper
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from portal.core.prepared import PreparedQuery
from portal.core.urls import url_maker
from portal.tenancy.access import ROLE_PERMISSIONS, Access
from portal.tenancy.models import Membership, Project, Role

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


class NavOrganization(NamedTuple):
    """An entry of the organization switcher, ready to print (a user may belong to a hundred)."""

    url: str
    name: str
    role: str
    current: bool


class NavProject(NamedTuple):
    """An entry of the project switcher."""

    url: str
    name: str
    current: bool


class NavPlace(NamedTuple):
    """The organization or project the page is in."""

    slug: str
    name: str
    url: str


class NavFrame(NamedTuple):
    """All the switchers and the sidebar print, as plain values: they are rendered once per set
    of values and kept (`{% include_kept %}`), and a value is all they can see."""

    organizations: tuple[NavOrganization, ...]
    projects: tuple[NavProject, ...]
    org: NavPlace | None
    project: NavPlace | None
    role: str
    perms: tuple[str, ...]


ROLE_LABELS = {role.value: role.label for role in Role}

# Any slug will do: slugs ([-a-zA-Z0-9_]) are printed in a URL as they are.
SLUG_STAND_IN = "any-slug-at-all"


def portal(request: HttpRequest) -> dict:
    """What the page frame needs: the organizations and projects for the header switchers.

    One query when the view left its checked access on the request (`remember_access`): the
    memberships, the projects of the organization in the URL joined to its row, and whether the
    sign-in address is confirmed (for the banner), as values. Two when it did not. The switchers
    get entries ready to print, their links from one reverse() each: a user may belong to a
    hundred organizations, and the frame is on every page."""
    context: dict = {"site_name": settings.SITE_NAME}
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return context
    match = getattr(request, "resolver_match", None)
    kwargs = match.kwargs if match else {}
    access = _checked_access(request, user, kwargs)
    if access is None:
        verified = user.emailaddress_set.filter(email__iexact=user.email, verified=True)
        memberships = user.memberships.annotate(nav_email_verified=Exists(verified))
        context.update(_frame(user, memberships, kwargs))
    else:
        context.update(_frame_from_access(user, access))
    context["nav_frame"] = _plain_frame(context)
    return context


def _plain_frame(context: dict) -> NavFrame:
    org, project = context.get("nav_org"), context.get("nav_project")
    return NavFrame(
        organizations=tuple(context.get("nav_organizations", ())),
        projects=tuple(context.get("nav_projects", ())),
        org=NavPlace(org.slug, org.name, org.get_absolute_url()) if org else None,
        project=NavPlace(project.slug, project.name, project.get_absolute_url()) if project else None,
        role=context.get("nav_role", ""),
        perms=tuple(sorted(context.get("nav_perms", ()))),
    )


def _frame(user, memberships: QuerySet, kwargs: dict) -> dict:
    """The organization in the URL (if any) from the user's memberships, then its projects."""
    rows = list(memberships.select_related("organization").order_by("organization__name"))
    current = next((m for m in rows if m.organization.slug == kwargs.get("org_slug")), None)
    org_url = url_maker("tenancy:org_dashboard", "org_slug", SLUG_STAND_IN)
    context = {
        "nav_memberships": rows,
        "nav_organizations": [
            NavOrganization(
                org_url(m.organization.slug), m.organization.name, m.get_role_display(), m is current
            )
            for m in rows
        ],
        "nav_email_verified": rows[0].nav_email_verified if rows else user.has_verified_email,
    }
    if current is not None:
        org = current.organization
        projects = list(org.projects.all())
        project = next((p for p in projects if p.slug == kwargs.get("project_slug")), None)
        project_url = url_maker("tenancy:project_dashboard", "project_slug", SLUG_STAND_IN, org_slug=org.slug)
        context |= _current_org(current, project)
        context["nav_projects"] = [NavProject(project_url(p.slug), p.name, p is project) for p in projects]
    return context


def _frame_rows(user_id: int, email: str, org_id: int) -> QuerySet:
    """Per membership of the user: its organization, role, the projects of the organization `org_id`
    (a row each, adjacent; None elsewhere) and whether `email` is a confirmed address of the user."""
    # Upper() = Upper(), not iexact: on SQLite iexact escapes its value into a LIKE pattern, which
    # a prepared query could not repeat (portal.core.prepared refuses it).
    verified = EmailAddress.objects.annotate(upper_email=Upper("email")).filter(
        user_id=user_id, upper_email=Upper(Value(email)), verified=True
    )
    return (
        Membership.objects.filter(user_id=user_id)
        .annotate(
            nav_email_verified=Exists(verified),
            nav_project=FilteredRelation(
                "organization__projects", condition=Q(organization__projects__organization=org_id)
            ),
        )
        .order_by("organization__name", "organization_id", "nav_project__name")
        .values_list(
            "organization_id",
            "organization__name",
            "organization__slug",
            "role",
            "nav_project__name",
            "nav_project__slug",
            "nav_email_verified",
        )
    )


# Built and compiled once: every page of an organization asks it (portal.core.prepared).
_FRAME_QUERY = PreparedQuery(
    _frame_rows, user_id=-8_420_571_933, email="stand-in-email%_\\@example.invalid", org_id=-6_113_820_457
)


def _frame_from_access(user, access: Access) -> dict:
    """The organization and project in the URL are the view's; the other organizations and
    projects need only a name and a link, read as values (no model instances) in one query."""
    org = access.organization
    rows = _FRAME_QUERY.rows(user_id=user.pk, email=user.email, org_id=org.pk)
    org_url = url_maker("tenancy:org_dashboard", "org_slug", SLUG_STAND_IN)
    project_url = url_maker("tenancy:project_dashboard", "project_slug", SLUG_STAND_IN, org_slug=org.slug)
    current_slug = access.project.slug if access.project else None
    organizations: list[NavOrganization] = []
    projects: list[NavProject] = []
    last_org_id, current_id = None, org.pk
    for org_id, name, slug, role, project_name, project_slug, _ in rows:
        # One row per membership, except the current organization's: one per project, adjacent.
        if org_id != last_org_id:
            organizations.append(
                NavOrganization(org_url(slug), name, ROLE_LABELS.get(role, role), org_id == current_id)
            )
            last_org_id = org_id
        if project_slug is not None:  # only the current organization's rows join a project
            projects.append(NavProject(project_url(project_slug), project_name, project_slug == current_slug))
    return {
        # Model instances only if the page prints them (none that checks access does): own query.
        "nav_memberships": SimpleLazyObject(
            lambda: list(user.memberships.select_related("organization").order_by("organization__name"))
        ),
        "nav_organizations": organizations,
        # Rows: the membership the view checked is among them, unless it went in the meantime.
        "nav_email_verified": rows[0][-1] if rows else user.has_verified_email,
        "nav_projects": projects,
    } | _current_org(access.membership, access.project)


def _current_org(membership: Membership, project: Project | None) -> dict:
    return {
        "nav_org": membership.organization,
        "nav_role": membership.get_role_display(),
        # What the navigation may offer: links a role can't use are not shown.
        "nav_perms": {perm.value for perm in ROLE_PERMISSIONS[Role(membership.role)]},
        "nav_project": project,
    }
