"""The one place that answers "may this user do this to this object?".

Every view that takes an organization or project from the URL goes through `org_access` or
`project_access`. Objects of an organization the user is not a member of are a 404, identical to
an id that does not exist; what a member may see but not change is a 403 with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.core.exceptions import PermissionDenied
from django.http import Http404

from portal.tenancy.models import Invitation, Membership, Project, Role


class Perm(StrEnum):
    ORG_VIEW = "org.view"
    ORG_EDIT = "org.edit"
    MEMBERS_VIEW = "members.view"
    MEMBERS_MANAGE = "members.manage"
    OWNERS_MANAGE = "owners.manage"
    PROJECT_VIEW = "project.view"
    PROJECT_CREATE = "project.create"
    PROJECT_EDIT = "project.edit"
    PROJECT_DELETE = "project.delete"
    AUDIT_VIEW = "audit.view"
    POLICY_EDIT = "policy.edit"
    RESOURCE_CREATE = "resource.create"
    RESOURCE_OPERATE = "resource.operate"
    BILLING_VIEW = "billing.view"
    CONSOLE = "console.connect"  # type into a server's serial console (as root, on most images)

    @property
    def changes_state(self) -> bool:
        return not self.value.endswith(".view")


_READ = {Perm.ORG_VIEW, Perm.MEMBERS_VIEW, Perm.PROJECT_VIEW}
_OPERATE = {Perm.RESOURCE_CREATE, Perm.RESOURCE_OPERATE, Perm.CONSOLE}
_ADMINISTER = {
    Perm.ORG_EDIT,
    Perm.MEMBERS_MANAGE,
    Perm.PROJECT_CREATE,
    Perm.PROJECT_EDIT,
    Perm.PROJECT_DELETE,
    Perm.AUDIT_VIEW,
    Perm.POLICY_EDIT,
    Perm.BILLING_VIEW,
}

# The permission table. tests/tenancy/test_roles.py mirrors it cell by cell.
ROLE_PERMISSIONS: dict[Role, frozenset[Perm]] = {
    Role.OWNER: frozenset(_READ | _OPERATE | _ADMINISTER | {Perm.OWNERS_MANAGE}),
    Role.ADMIN: frozenset(_READ | _OPERATE | _ADMINISTER),
    Role.MEMBER: frozenset(_READ | _OPERATE),
    Role.VIEWER: frozenset(_READ),
}

_WHO_MAY = {perm: " or ".join(r.label for r in Role if perm in ROLE_PERMISSIONS[r]) for perm in Perm}


def role_allows(role: str, perm: Perm) -> bool:
    return perm in ROLE_PERMISSIONS[Role(role)]


@dataclass(frozen=True)
class Access:
    membership: Membership
    project: Project | None = None

    @property
    def organization(self):
        return self.membership.organization

    @property
    def role(self) -> Role:
        return Role(self.membership.role)

    def get_membership(self, membership_id: int) -> Membership:
        membership = (
            Membership.objects.select_related("user")
            .filter(organization=self.organization, pk=membership_id)
            .first()
        )
        if membership is None:
            raise Http404("No such member.")
        return membership

    def get_invitation(self, invitation_id: int) -> Invitation:
        invitation = Invitation.objects.filter(organization=self.organization, pk=invitation_id).first()
        if invitation is None:
            raise Http404("No such invitation.")
        return invitation

    def can(self, perm: Perm) -> bool:
        return role_allows(self.membership.role, perm)

    def require(self, perm: Perm) -> None:
        if not self.can(perm):
            raise PermissionDenied(
                f"Your role in {self.organization.name} is {self.role.label}; "
                f"this needs the {_WHO_MAY[perm]} role."
            )
        if perm.changes_state:
            require_verified_email(self.membership.user)


def require_verified_email(user) -> None:
    if not user.has_verified_email:
        raise PermissionDenied(
            "Please confirm your e-mail address first: follow the link we sent you "
            "(you can ask for a new one on your account's e-mail page)."
        )


def org_access(user, org_slug: str, perm: Perm = Perm.ORG_VIEW) -> Access:
    access = Access(_membership(user, org_slug))
    access.require(perm)
    return access


def project_access(user, org_slug: str, project_slug: str, perm: Perm = Perm.PROJECT_VIEW) -> Access:
    membership = _membership(user, org_slug)
    Access(membership).require(Perm.ORG_VIEW)
    project = Project.objects.filter(organization=membership.organization, slug=project_slug).first()
    if project is None:
        raise Http404("No such project.")
    project.organization = membership.organization  # known already: no query when a URL needs it
    access = Access(membership, project)
    access.require(perm)
    return access


def _membership(user, org_slug: str) -> Membership:
    """The user's membership of the organization with its organization, or 404: a stranger gets
    the answer a slug that does not exist gets."""
    if not user.is_authenticated:
        raise Http404
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=user, organization__slug=org_slug)
        .first()
    )
    if membership is None:
        raise Http404("No such organization.")
    membership.user = user  # the signed-in user, not read again
    return membership
