"""What a token may do: its owner's current role (portal.tenancy.access, the one permission table)
intersected with the token's scope, and only inside its organization (and project, if bound).

`TokenAccess` is an `Access`, so the services that call `access.require(perm)` enforce the token's
scope too: a read-only token that somehow reached a write service is still refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from portal.api.models import ApiToken, TokenScope
from portal.lib.ids import as_id
from portal.tenancy.access import Access, Perm, org_access, project_access
from portal.tenancy.models import Project

READ_PERMS = frozenset({Perm.ORG_VIEW, Perm.PROJECT_VIEW, Perm.MEMBERS_VIEW})
WRITE_PERMS = frozenset({Perm.RESOURCE_CREATE, Perm.RESOURCE_OPERATE, Perm.CONSOLE})
# Setting a budget is PROJECT_EDIT in the permission table; a token gets it only with billing + write.
BILLING_WRITE_PERMS = frozenset({Perm.PROJECT_EDIT})
# Never granted to a token, whatever its scope: members, invitations, owners, policies, settings,
# projects, audit log. (Tokens themselves are created on the web page only.)


def token_perms(token: ApiToken) -> frozenset[Perm]:
    perms = set(READ_PERMS)
    if token.scope == TokenScope.READ_WRITE:
        perms |= WRITE_PERMS
    if token.billing:
        perms.add(Perm.BILLING_VIEW)
        if token.scope == TokenScope.READ_WRITE:
            perms |= BILLING_WRITE_PERMS
    return frozenset(perms)


@dataclass(frozen=True)
class TokenAccess(Access):
    token: ApiToken | None = None

    def can(self, perm: Perm) -> bool:
        return super().can(perm) and perm in token_perms(self.token)

    def require(self, perm: Perm) -> None:
        if not super().can(perm):
            super().require(perm)  # the role's refusal, in the same words as the web pages
        if perm not in token_perms(self.token):
            raise PermissionDenied(scope_refusal(self.token, perm))
        super().require(perm)  # and the e-mail check for changes

    @property
    def may_see_costs(self) -> bool:
        return self.token.billing


def scope_refusal(token: ApiToken, perm: Perm) -> str:
    if perm in WRITE_PERMS and token.scope == TokenScope.READ:
        return f"The token “{token.name}” is read-only; this needs a read-write token."
    if perm == Perm.BILLING_VIEW or perm in BILLING_WRITE_PERMS:
        need = "billing access" + (" and read-write scope" if perm in BILLING_WRITE_PERMS else "")
        return f"The token “{token.name}” has no {need}; create a token with it on the API tokens page."
    return f"API tokens can't do this (“{perm.value}”): use the web portal."


def require_billing(access: TokenAccess) -> None:
    """Costs and budgets: the token must have been created with billing access."""
    if not access.token.billing:
        raise PermissionDenied(scope_refusal(access.token, Perm.BILLING_VIEW))


def token_org_access(token: ApiToken, perm: Perm = Perm.ORG_VIEW) -> TokenAccess:
    base = org_access(token.user, token.organization.slug, Perm.ORG_VIEW)
    access = TokenAccess(base.membership, token=token)
    access.require(perm)
    return access


def token_projects(token: ApiToken) -> QuerySet[Project]:
    projects = Project.objects.filter(organization_id=token.organization_id)
    if token.project_id is not None:
        projects = projects.filter(pk=token.project_id)
    return projects


def find_project(token: ApiToken, ref: int | str) -> Project:
    """A project of the token's reach by id or slug; 404 otherwise (the same for any other project)."""
    text = str(ref).strip()
    lookup = {"pk": as_id(text)} if as_id(text) is not None else {"slug": text}
    project = token_projects(token).filter(**lookup).first()
    if project is None:
        raise Http404("No such project.")
    return project


def token_project_access(token: ApiToken, project: Project, perm: Perm = Perm.PROJECT_VIEW) -> TokenAccess:
    if token.project_id is not None and project.pk != token.project_id:
        raise Http404("No such project.")
    base = project_access(token.user, token.organization.slug, project.slug, Perm.PROJECT_VIEW)
    access = TokenAccess(base.membership, base.project, token=token)
    access.require(perm)
    return access
