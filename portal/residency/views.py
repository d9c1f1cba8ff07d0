from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Zone
from portal.residency import services
from portal.residency.findings import residency_findings
from portal.residency.forms import PolicyForm
from portal.residency.models import ResidencyPolicy
from portal.residency.picker import zone_picker
from portal.residency.placement import PlacementDenied, PlacementRules
from portal.residency.policy import describe
from portal.tenancy.access import Access, Perm, org_access, project_access
from portal.tenancy.views import project_settings_page

HISTORY_ACTIONS = [AuditAction.POLICY_CHANGED, AuditAction.PLACEMENT_DENIED]


def _policy_initial(policy: ResidencyPolicy | None) -> dict:
    if policy is None:
        return {}
    return {
        "name": policy.name,
        "jurisdictions": list(policy.jurisdictions.all()),
        "regions": list(policy.regions.all()),
        "certifications": list(policy.certifications.all()),
    }


def _save_policy(request: HttpRequest, access: Access, form: PolicyForm) -> bool:
    if not form.is_valid():
        return False
    try:
        services.policy_update(access=access, request=request, **form.cleaned_data)
    except ValidationError as error:
        form.apply_errors(error.message_dict)
        return False
    messages.success(request, "Residency policy saved. Every new placement is checked against it.")
    return True


@login_required
@require_http_methods(["GET", "POST"])
def org_residency(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(
        request.user, org_slug, Perm.POLICY_EDIT if request.method == "POST" else Perm.ORG_VIEW
    )
    org = access.organization
    policy = ResidencyPolicy.objects.filter(organization=org, project__isnull=True).first()
    form = PolicyForm(request.POST or None, initial=_policy_initial(policy))
    if request.method == "POST" and _save_policy(request, access, form):
        return redirect("residency:org_residency", org_slug=org.slug)
    rules = PlacementRules.for_organization(org)
    projects = [(project, residency_findings(project)) for project in org.projects.all()]
    return render(
        request,
        "residency/org_residency.html",
        {
            "access": access,
            "org": org,
            "policy": policy,
            "policy_lines": describe(policy),
            "form": form,
            "can_edit": access.can(Perm.POLICY_EDIT),
            "picker": zone_picker(rules=rules),
            "projects": [(p, sum(not f.compliant for f in findings)) for p, findings in projects],
            "history": AuditEvent.objects.filter(organization=org, action__in=HISTORY_ACTIONS)[:25],
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_residency(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    perm = Perm.POLICY_EDIT if request.method == "POST" else Perm.PROJECT_VIEW
    access = project_access(request.user, org_slug, project_slug, perm)
    project = access.project
    org_policy = ResidencyPolicy.objects.filter(
        organization=access.organization, project__isnull=True
    ).first()
    policy = ResidencyPolicy.objects.filter(project=project).first()
    form = PolicyForm(request.POST or None, initial=_policy_initial(policy))
    form.mark_outside(org_policy)
    if request.method == "POST" and _save_policy(request, access, form):
        return redirect("residency:project_residency", org_slug=org_slug, project_slug=project.slug)
    return render(
        request,
        "residency/project_residency.html",
        {
            "access": access,
            "org": access.organization,
            "project": project,
            "org_policy": org_policy,
            "org_policy_lines": describe(org_policy),
            "policy": policy,
            "policy_lines": describe(policy),
            "form": form,
            "can_edit": access.can(Perm.POLICY_EDIT),
            "findings": residency_findings(project),
            # This project's policy changes and refusals, and the organization's policy changes.
            "history": AuditEvent.objects.filter(organization=access.organization, action__in=HISTORY_ACTIONS)
            .filter(Q(project=project) | Q(project__isnull=True, action=AuditAction.POLICY_CHANGED))
            .select_related("project")[:25],
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def project_default_zone(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.PROJECT_EDIT)
    raw = request.POST.get("zone", "").strip()
    zone = None
    if raw:
        zone = Zone.objects.filter(pk=raw).first() if raw.isdigit() else None
        if zone is None:
            return _settings_refusal(request, access, "Choose one of the zones listed.", 400)
    try:
        if zone is not None and not zone.accepts_launches:
            return _settings_refusal(
                request,
                access,
                f"{zone.code} is {zone.get_status_display().lower()} right now; choose another zone.",
                409,
            )
        services.project_default_zone_set(access=access, zone=zone, request=request)
    except PlacementDenied as denied:
        return _settings_refusal(request, access, denied.decision.reason, 403)
    messages.success(request, f"New resources will go to {zone.code}." if zone else "Default zone cleared.")
    return redirect("tenancy:project_settings", org_slug=org_slug, project_slug=project_slug)


def _settings_refusal(request: HttpRequest, access: Access, reason: str, status: int) -> HttpResponse:
    messages.error(request, reason)
    return project_settings_page(request, access, status=status)
