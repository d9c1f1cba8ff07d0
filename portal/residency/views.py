from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.audit.models import AuditAction, AuditEvent
from portal.residency import services
from portal.residency.findings import findings_by_project, residency_findings
from portal.residency.forms import DefaultZoneForm, PolicyForm
from portal.residency.models import ResidencyPolicy
from portal.residency.picker import zone_picker
from portal.residency.placement import PlacementDenied, PlacementRules, placement_decision
from portal.residency.policy import describe
from portal.tenancy.access import Access, Perm, org_access, project_access
from portal.tenancy.views import project_settings_page

HISTORY_ACTIONS = [AuditAction.POLICY_CHANGED, AuditAction.PLACEMENT_DENIED]


def _history(access: Access, where: Q):
    """Policy changes and refused placements; who did what is for those who may read the audit log."""
    if not access.can(Perm.AUDIT_VIEW):
        return None
    return AuditEvent.objects.filter(where, action__in=HISTORY_ACTIONS)[:25]


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
    initial = _policy_initial(policy)
    form = PolicyForm(request.POST or None, initial=initial, keep_regions=initial.get("regions", ()))
    if request.method == "POST" and _save_policy(request, access, form):
        stranded = services.projects_allowing_no_zone(org)
        if stranded:
            messages.warning(
                request,
                "These projects' own policies now leave no zone at all; review them: "
                + ", ".join(p.name for p in stranded),
            )
        return redirect("residency:org_residency", org_slug=org.slug)
    rules = PlacementRules.for_organization(org)
    project_list = list(org.projects.all())
    found = findings_by_project(org, project_list)
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
            "projects": [(p, sum(not f.compliant for f in found[p.pk])) for p in project_list],
            "history": _history(access, Q(organization=org)),
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
    initial = _policy_initial(policy)
    form = PolicyForm(request.POST or None, initial=initial, keep_regions=initial.get("regions", ()))
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
            "history": _history(
                access,
                Q(organization=access.organization)
                & (Q(project=project) | Q(project__isnull=True, action=AuditAction.POLICY_CHANGED)),
            ),
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def project_default_zone(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.PROJECT_EDIT)
    if request.POST.get("action") == "clear":
        services.project_default_zone_set(access=access, zone=None, request=request)
        messages.success(request, "Default zone cleared.")
        return redirect("tenancy:project_settings", org_slug=org_slug, project_slug=project_slug)
    form = DefaultZoneForm(request.POST)
    if not form.is_valid():
        raw = request.POST.get("zone", "")
        if raw:  # a value no picker offered: a forged or stale request
            services.record_placement_denied(
                access=access,
                zone=None,
                attempted=f"set the default zone to {raw[:40]!r}",
                reason="No such zone.",
                request=request,
            )
        return _settings_refusal(request, access, " ".join(form.errors["zone"]), 400)
    zone = form.cleaned_data["zone"]
    try:
        # Policy first: a forbidden zone is refused (and audited) whatever its status.
        if placement_decision(access.project, zone) and not zone.accepts_launches:
            return _settings_refusal(
                request,
                access,
                zone.refusal,
                409,
            )
        services.project_default_zone_set(access=access, zone=zone, request=request)
    except PlacementDenied as denied:
        return _settings_refusal(request, access, denied.decision.reason, 403)
    messages.success(request, f"New resources will go to {zone.code}.")
    return redirect("tenancy:project_settings", org_slug=org_slug, project_slug=project_slug)


def _settings_refusal(request: HttpRequest, access: Access, reason: str, status: int) -> HttpResponse:
    messages.error(request, reason)
    return project_settings_page(request, access, status=status)
