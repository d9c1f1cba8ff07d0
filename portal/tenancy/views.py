from __future__ import annotations

from allauth.account.adapter import get_adapter
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from portal.lib.ratelimit import RateLimited
from portal.residency.findings import noncompliant
from portal.residency.picker import zone_picker
from portal.residency.placement import PlacementRules
from portal.tenancy import services
from portal.tenancy.access import Access, Perm, org_access, project_access
from portal.tenancy.forms import InvitationForm, OrganizationForm, ProjectForm, RoleForm, role_choices
from portal.tenancy.models import ROLE_HELP, InvitationStatus, Membership, Role
from portal.tenancy.selectors import quota_usage

SESSION_LAST_ORG = "last_org"
SESSION_INVITATION = "pending_invitation"


def _remember(request: HttpRequest, access: Access) -> None:
    request.session[SESSION_LAST_ORG] = access.organization.slug


def _refused(request: HttpRequest, access: Access, error: Exception, status: int = 409) -> HttpResponse:
    """A rule refused the action: the members page again, with the reason."""
    messages.error(request, " ".join(error.messages) if isinstance(error, ValidationError) else str(error))
    return _members_page(request, access, status=429 if isinstance(error, RateLimited) else status)


# --- Organizations ----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def organization_create(request: HttpRequest) -> HttpResponse:
    """The first onboarding step for a new user, and "New organization" for everyone else."""
    verified = request.user.has_verified_email
    form = OrganizationForm(request.POST or None)
    if request.method == "POST":
        if not verified:
            raise PermissionDenied("Please confirm your e-mail address before creating an organization.")
        if form.is_valid():
            try:
                org = services.organization_create(
                    user=request.user, name=form.cleaned_data["name"], request=request
                )
            except ValidationError as error:
                form.add_error("name", error)
            else:
                messages.success(request, f"{org.name} is ready. Now create its first project.")
                return redirect(
                    reverse("tenancy:project_create", kwargs={"org_slug": org.slug}) + "?welcome=1"
                )
    onboarding = not request.user.memberships.exists()
    return render(
        request,
        "tenancy/organization_create.html",
        {"form": form, "onboarding": onboarding, "verified": verified},
        status=400 if form.errors else 200,
    )


@login_required
@require_safe
def org_dashboard(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug)
    _remember(request, access)
    org = access.organization
    return render(
        request,
        "tenancy/org_dashboard.html",
        {
            "access": access,
            "org": org,
            "projects": org.projects.all(),
            "members": org.memberships.select_related("user").order_by("user__email")[:8],
            "member_count": org.memberships.count(),
            "can_create_project": access.can(Perm.PROJECT_CREATE),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def org_settings(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.ORG_EDIT)
    org = access.organization
    form = OrganizationForm(request.POST or None, initial={"name": org.name})
    if request.method == "POST" and form.is_valid():
        services.organization_update(access=access, name=form.cleaned_data["name"], request=request)
        messages.success(request, "Organization settings saved.")
        return redirect("tenancy:org_settings", org_slug=org.slug)
    return render(
        request,
        "tenancy/org_settings.html",
        {"access": access, "org": org, "form": form},
        status=400 if form.errors else 200,
    )


# --- Members and invitations ------------------------------------------------------------------


def _members_page(
    request: HttpRequest, access: Access, *, invite_form: InvitationForm | None = None, status: int = 200
) -> HttpResponse:
    org = access.organization
    can_manage = access.can(Perm.MEMBERS_MANAGE)
    can_manage_owners = access.can(Perm.OWNERS_MANAGE)
    memberships = list(org.memberships.select_related("user").order_by("user__email"))
    rows = [
        {
            "membership": m,
            "is_me": m.pk == access.membership.pk,
            "editable": can_manage
            and m.pk != access.membership.pk
            and (m.role != Role.OWNER or can_manage_owners),
        }
        for m in memberships
    ]
    return render(
        request,
        "tenancy/members.html",
        {
            "access": access,
            "org": org,
            "rows": rows,
            "invitations": org.invitations.select_related("invited_by").filter(
                status=InvitationStatus.PENDING
            ),
            "can_manage_owners": can_manage_owners,
            "last_owner": access.role == Role.OWNER
            and not org.memberships.filter(role=Role.OWNER).exclude(pk=access.membership.pk).exists(),
            "invitation_days": settings.PORTAL_INVITATION_DAYS,
            "can_manage": can_manage,
            "invite_form": invite_form or InvitationForm(allow_owner=can_manage_owners),
            "role_choices": role_choices(allow_owner=can_manage_owners),
            "role_help": [(r.label, ROLE_HELP[r]) for r in Role],
        },
        status=status,
    )


@login_required
@require_safe
def members(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.MEMBERS_VIEW)
    return _members_page(request, access)


@login_required
@require_POST
def invitation_create(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.MEMBERS_MANAGE)
    form = InvitationForm(request.POST, allow_owner=access.can(Perm.OWNERS_MANAGE))
    if not form.is_valid():
        return _members_page(request, access, invite_form=form, status=400)
    try:
        invitation = services.invitation_create(
            access=access, email=form.cleaned_data["email"], role=form.cleaned_data["role"], request=request
        )
    except ValidationError as error:
        form.add_error("email", error)
        return _members_page(request, access, invite_form=form, status=400)
    except RateLimited as error:
        return _refused(request, access, error)
    messages.success(request, f"Invitation sent to {invitation.email}.")
    return redirect("tenancy:members", org_slug=org_slug)


@login_required
@require_POST
def invitation_resend(request: HttpRequest, org_slug: str, invitation_id: int) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.MEMBERS_MANAGE)
    invitation = access.get_invitation(invitation_id)
    try:
        services.invitation_resend(access=access, invitation_id=invitation.pk, request=request)
    except (ValidationError, RateLimited) as error:
        return _refused(request, access, error)
    messages.success(
        request, f"Invitation sent again to {invitation.email}; the earlier link no longer works."
    )
    return redirect("tenancy:members", org_slug=org_slug)


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, org_slug: str, invitation_id: int) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.MEMBERS_MANAGE)
    invitation = access.get_invitation(invitation_id)
    try:
        services.invitation_revoke(access=access, invitation_id=invitation.pk, request=request)
    except ValidationError as error:
        return _refused(request, access, error)
    messages.success(request, f"Invitation for {invitation.email} withdrawn.")
    return redirect("tenancy:members", org_slug=org_slug)


@login_required
@require_POST
def member_role(request: HttpRequest, org_slug: str, membership_id: int) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.MEMBERS_MANAGE)
    membership = access.get_membership(membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _refused(request, access, ValidationError("Choose one of the roles listed."), 400)
    try:
        services.membership_change_role(
            access=access, membership_id=membership.pk, role=form.cleaned_data["role"], request=request
        )
    except ValidationError as error:
        return _refused(request, access, error)
    messages.success(
        request, f"{membership.user.display_name} is now {Role(form.cleaned_data['role']).label}."
    )
    return redirect("tenancy:members", org_slug=org_slug)


@login_required
@require_POST
def member_remove(request: HttpRequest, org_slug: str, membership_id: int) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.MEMBERS_MANAGE)
    membership = access.get_membership(membership_id)
    if membership.pk == access.membership.pk:
        return _refused(
            request, access, ValidationError("To leave the organization, use “Leave organization”."), 400
        )
    try:
        services.membership_remove(access=access, membership_id=membership.pk, request=request)
    except ValidationError as error:
        return _refused(request, access, error)
    messages.success(
        request, f"{membership.user.display_name} no longer has access to {access.organization.name}."
    )
    return redirect("tenancy:members", org_slug=org_slug)


@login_required
@require_POST
def org_leave(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug)
    try:
        services.membership_remove(access=access, membership_id=access.membership.pk, request=request)
    except ValidationError as error:
        return _refused(request, access, error)
    request.session.pop(SESSION_LAST_ORG, None)
    messages.success(request, f"You left {access.organization.name}.")
    return redirect("home")


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = services.invitation_for_token(token)
    except services.InvitationInvalid as error:
        request.session.pop(SESSION_INVITATION, None)
        return render(request, "tenancy/invitation_invalid.html", {"reason": str(error)}, status=404)

    if not request.user.is_authenticated:
        # Whoever opened the link can read that mailbox: sign-up with this address is pre-verified,
        # and after sign-up or sign-in the user comes back here.
        request.session[SESSION_INVITATION] = token
        get_adapter(request).stash_verified_email(request, invitation.email)
        account_exists = EmailAddress.objects.filter(email__iexact=invitation.email).exists()
        return render(
            request,
            "tenancy/invitation_accept.html",
            {"invitation": invitation, "account_exists": account_exists, "next": request.path},
        )

    matches = services.user_has_email(request.user, invitation.email)
    already = Membership.objects.filter(organization=invitation.organization, user=request.user).first()
    if request.method == "POST":
        try:
            membership = services.invitation_accept(user=request.user, token=token, request=request)
        except services.InvitationInvalid as error:
            return render(request, "tenancy/invitation_invalid.html", {"reason": str(error)}, status=410)
        request.session.pop(SESSION_INVITATION, None)
        org_name, role = membership.organization.name, membership.get_role_display()
        if already:
            messages.info(request, f"You were already a member of {org_name}; your role stays {role}.")
        else:
            messages.success(request, f"Welcome to {org_name}! You joined as {role}.")
        return redirect(membership.organization)
    # Shown once: home stops sending the user here, whatever they decide.
    request.session.pop(SESSION_INVITATION, None)
    return render(
        request,
        "tenancy/invitation_accept.html",
        {"invitation": invitation, "matches": matches, "already": already},
        status=200 if matches else 403,
    )


# --- Projects ---------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.PROJECT_CREATE)
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = services.project_create(access=access, request=request, **form.cleaned_data)
        messages.success(request, f"Project {project.name} created.")
        return redirect(project)
    return render(
        request,
        "tenancy/project_create.html",
        {"access": access, "org": access.organization, "form": form, "welcome": "welcome" in request.GET},
        status=400 if form.errors else 200,
    )


@login_required
@require_safe
def project_dashboard(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    _remember(request, access)
    org = access.organization
    return render(
        request,
        "tenancy/project_dashboard.html",
        {
            "access": access,
            "org": org,
            "project": access.project,
            "quotas": quota_usage(access.project),
            "noncompliant": noncompliant(access.project),
            "servers": access.project.instances.visible().with_catalog()[:5],
            "can_launch": access.can(Perm.RESOURCE_CREATE),
            "members": org.memberships.select_related("user").order_by("user__email"),
            "can_edit": access.can(Perm.PROJECT_EDIT),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.PROJECT_EDIT)
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.project_update(access=access, request=request, **form.cleaned_data)
        messages.success(request, "Project settings saved.")
        return redirect(access.project)
    return project_settings_page(request, access, form=form, status=400 if form.errors else 200)


def project_settings_page(
    request: HttpRequest, access: Access, *, form: ProjectForm | None = None, status: int = 200
) -> HttpResponse:
    project = access.project
    if form is None or not form.is_bound:
        form = ProjectForm(initial={"name": project.name, "description": project.description})
    picker = zone_picker(
        rules=PlacementRules.for_project(project), selected_zone_id=project.default_zone_id, field_name="zone"
    )
    return render(
        request,
        "tenancy/project_settings.html",
        {"access": access, "org": access.organization, "project": project, "form": form, "picker": picker},
        status=status,
    )


@login_required
@require_POST
def project_delete(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.PROJECT_DELETE)
    if request.POST.get("confirm", "").strip() != access.project.slug:
        messages.error(request, f"Type the project's short name “{access.project.slug}” to confirm deletion.")
        form = ProjectForm(initial={"name": access.project.name, "description": access.project.description})
        return render(
            request,
            "tenancy/project_settings.html",
            {"access": access, "org": access.organization, "project": access.project, "form": form},
            status=400,
        )
    name = access.project.name
    services.project_delete(access=access, request=request)
    messages.success(request, f"Project {name} deleted.")
    return redirect(access.organization)
