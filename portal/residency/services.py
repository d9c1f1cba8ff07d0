from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.catalog.models import Certification, Jurisdiction, Region, Zone
from portal.core.mail import mail_after_commit
from portal.residency.findings import Finding, noncompliant
from portal.residency.models import ResidencyPolicy
from portal.residency.placement import PlacementDenied, placement_decision
from portal.residency.policy import policy_conflicts
from portal.tenancy.access import Access, Perm
from portal.tenancy.models import Membership, Project, Role


def enforce_placement(
    *, access: Access, zone: Zone, attempted: str, request: HttpRequest | None = None
) -> None:
    """Raise PlacementDenied when the project's policies forbid `zone`, after recording the attempt.

    Call it before opening the transaction that places the resource: the audit event of a denied
    attempt must survive the refusal.
    """
    decision = placement_decision(access.project, zone)
    if not decision:
        audit_record(
            action=AuditAction.PLACEMENT_DENIED,
            organization=access.organization,
            project=access.project,
            target=zone,
            changes={"attempted": [None, attempted], "reason": [None, decision.reason]},
            actor=access.membership.user,
            request=request,
        )
        raise PlacementDenied(decision)


def project_default_zone_set(
    *, access: Access, zone: Zone | None, request: HttpRequest | None = None
) -> Project:
    access.require(Perm.PROJECT_EDIT)
    if zone is not None:
        enforce_placement(access=access, zone=zone, attempted="set the default zone", request=request)
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=access.project.pk)
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
    org_policy = None
    if project is not None:
        org_policy = ResidencyPolicy.objects.filter(organization=org, project__isnull=True).first()
    errors = policy_conflicts(organization_policy=org_policy, jurisdictions=jurisdictions, regions=regions)
    if errors:
        raise ValidationError(errors)

    affected = [project] if project is not None else list(org.projects.all())
    before = {p.pk: {f.resource for f in noncompliant(p)} for p in affected}

    policy, _ = ResidencyPolicy.objects.get_or_create(organization=org, project=project)
    policy = ResidencyPolicy.objects.select_for_update().get(pk=policy.pk)
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

    newly_outside: list[tuple[Project, Finding]] = [
        (p, finding) for p in affected for finding in noncompliant(p) if finding.resource not in before[p.pk]
    ]
    if newly_outside:
        _mail_owners_about(policy=policy, findings=newly_outside, request=request)
    return policy


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
            "base_url": request.build_absolute_uri("/").rstrip("/") if request else "",
        },
    )
