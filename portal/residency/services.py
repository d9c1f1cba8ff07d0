from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.catalog.models import Certification, Jurisdiction, Region, Zone
from portal.core.mail import mail_after_commit
from portal.residency.findings import Finding, findings_by_project
from portal.residency.models import ResidencyPolicy
from portal.residency.placement import (
    PlacementDenied,
    PlacementRules,
    PolicyRule,
    placement_decision,
    zones_for_decisions,
)
from portal.residency.policy import policy_conflicts
from portal.tenancy.access import Access, Perm
from portal.tenancy.models import Membership, Project, Role


def record_placement_denied(
    *, access: Access, zone: Zone | None, attempted: str, reason: str, request: HttpRequest | None = None
) -> None:
    """Audit a refused placement. Call it outside the transaction that was refused, so it stays."""
    audit_record(
        action=AuditAction.PLACEMENT_DENIED,
        organization=access.organization,
        project=access.project,
        target=zone,
        changes={"attempted": [None, attempted], "reason": [None, reason]},
        actor=access.membership.user,
        request=request,
    )


def project_default_zone_set(
    *, access: Access, zone: Zone | None, request: HttpRequest | None = None
) -> Project:
    """Set (or clear, with None) where new resources go. Raises PlacementDenied, audited."""
    access.require(Perm.PROJECT_EDIT)
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=access.project.pk)
        decision = placement_decision(project, zone, lock=True) if zone is not None else None
        if decision is None or decision.allowed:
            old = project.default_zone
            if old != zone:
                project.default_zone = zone
                project.save(update_fields=["default_zone"])
                audit_record(
                    action=AuditAction.PROJECT_UPDATED,
                    organization=project.organization,
                    project=project,
                    target=project,
                    changes={"default_zone": [str(old) if old else None, str(zone) if zone else None]},
                    actor=access.membership.user,
                    request=request,
                )
            return project
    record_placement_denied(
        access=access,
        zone=zone,
        attempted=f"set the default zone to {zone.code}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)


def _names(objects, empty: str = "any") -> str:
    return ", ".join(sorted(str(o) for o in objects)) or empty


@transaction.atomic
def policy_update(
    *,
    access: Access,
    name: str,
    jurisdictions: list[Jurisdiction],
    regions: list[Region],
    certifications: list[Certification],
    request: HttpRequest | None = None,
) -> ResidencyPolicy:
    """Set the organization's policy (access without project) or the project's (access with one)."""
    access.require(Perm.POLICY_EDIT)
    org, project = access.organization, access.project
    # Lock first: placements decided meanwhile wait, and "before" below sees them all.
    policy, _ = ResidencyPolicy.objects.get_or_create(organization=org, project=project)
    policy = ResidencyPolicy.objects.select_for_update().get(pk=policy.pk)
    org_policy = None
    if project is not None:
        org_policy = ResidencyPolicy.objects.filter(organization=org, project__isnull=True).first()
    errors = policy_conflicts(organization_policy=org_policy, jurisdictions=jurisdictions, regions=regions)
    if (
        not errors
        and project is not None
        and not _allows_any_zone(org_policy, jurisdictions, regions, certifications)
    ):
        errors["__all__"] = [
            "Together with the organization's policy this allows no zone at all, so nothing could be "
            "placed in this project. Choose jurisdictions or regions the organization allows."
        ]
    if errors:
        raise ValidationError(errors)

    affected = [project] if project is not None else list(org.projects.all())
    before = {
        pk: {f.resource for f in found if not f.compliant}
        for pk, found in findings_by_project(org, affected).items()
    }

    old = {
        "name": policy.name,
        "jurisdictions": _names(policy.jurisdictions.all()),
        "regions": _names(policy.regions.all()),
        "certifications": _names(policy.certifications.all(), empty="none"),
    }
    new = {
        "name": name,
        "jurisdictions": _names(jurisdictions),
        "regions": _names(regions),
        "certifications": _names(certifications, empty="none"),
    }
    changes = {field: [old[field], new[field]] for field in old if old[field] != new[field]}
    if not changes:
        return policy
    policy.name = name
    policy.updated_by = access.membership.user
    policy.save()
    policy.jurisdictions.set(jurisdictions)
    policy.regions.set(regions)
    policy.certifications.set(certifications)
    audit_record(
        action=AuditAction.POLICY_CHANGED,
        organization=org,
        project=project,
        target=policy,
        changes=changes,
        actor=access.membership.user,
        request=request,
    )

    after = findings_by_project(org, affected)
    newly_outside: list[tuple[Project, Finding]] = [
        (p, finding)
        for p in affected
        for finding in after[p.pk]
        if not finding.compliant and finding.resource not in before[p.pk]
    ]
    if newly_outside:
        _mail_owners_about(policy=policy, findings=newly_outside, request=request)
    return policy


def _allows_any_zone(org_policy, jurisdictions, regions, certifications) -> bool:
    candidate = PolicyRule(
        label="candidate",
        jurisdictions={j.pk: j.name for j in jurisdictions},
        regions={r.pk: r.name for r in regions},
        certifications={c.pk: c.name for c in certifications},
    )
    rules = PlacementRules(
        ((PolicyRule.from_policy(org_policy),) if org_policy is not None else ()) + (candidate,)
    )
    return any(rules.decide(zone) for zone in zones_for_decisions().filter(region__is_active=True))


def projects_allowing_no_zone(organization) -> list[Project]:
    """Projects whose own policy, combined with the organization's, leaves nothing to place into."""
    projects = list(organization.projects.filter(residency_policy__isnull=False))
    if not projects:
        return []
    rules = PlacementRules.for_projects(organization, projects)
    zones = list(zones_for_decisions().filter(region__is_active=True))
    return [p for p in projects if not any(rules[p.pk].decide(zone) for zone in zones)]


def _mail_owners_about(*, policy: ResidencyPolicy, findings: list[tuple[Project, Finding]], request) -> None:
    owners = list(
        Membership.objects.filter(organization=policy.organization, role=Role.OWNER).values_list(
            "user__email", flat=True
        )
    )
    if not owners:
        return
    mail_after_commit(
        template="residency/email/noncompliant",
        to=owners,
        context={
            "policy": policy,
            "findings": findings,
            "review_path": (
                reverse("residency:project_residency", args=[policy.organization.slug, policy.project.slug])
                if policy.project_id
                else reverse("residency:org_residency", args=[policy.organization.slug])
            ),
            "base_url": request.build_absolute_uri("/").rstrip("/") if request else "",
        },
    )
