"""Rules about policies themselves: a project's policy may only narrow its organization's."""

from __future__ import annotations

from portal.catalog.models import Jurisdiction, Region
from portal.residency.models import ResidencyPolicy


def policy_conflicts(
    *,
    organization_policy: ResidencyPolicy | None,
    jurisdictions: list[Jurisdiction],
    regions: list[Region],
) -> dict[str, list[str]]:
    """Field → messages explaining why this choice is refused (empty when it is fine).

    `organization_policy` is None when checking the organization's own policy.
    """
    errors: dict[str, list[str]] = {}
    chosen = {j.pk for j in jurisdictions}
    for region in regions:
        if chosen and region.jurisdiction_id not in chosen:
            errors.setdefault("regions", []).append(
                f"{region.name} is in {region.jurisdiction.name} jurisdiction, which this policy does not allow. "
                "Add that jurisdiction or untick the region."
            )
    if organization_policy is None:
        return errors
    parent = organization_policy.label
    allowed_j = {j.pk: j.name for j in organization_policy.jurisdictions.all()}
    allowed_r = {r.pk: r for r in organization_policy.regions.all()}
    for jurisdiction in jurisdictions:
        if allowed_j and jurisdiction.pk not in allowed_j:
            errors.setdefault("jurisdictions", []).append(
                f"The {parent} does not allow {jurisdiction.name}: a project's policy can only narrow its "
                f"organization's (allowed there: {', '.join(sorted(allowed_j.values()))})."
            )
    for region in regions:
        outside_j = allowed_j and region.jurisdiction_id not in allowed_j
        outside_r = allowed_r and region.pk not in allowed_r
        if outside_j or outside_r:
            errors.setdefault("regions", []).append(
                f"The {parent} does not allow {region.name}: a project's policy can only narrow its organization's."
            )
    return errors


def describe(policy: ResidencyPolicy | None) -> list[str]:
    """The policy in plain sentences, for pages and e-mail."""
    if policy is None:
        return ["No restrictions: any jurisdiction and region."]
    jurisdictions = sorted(j.name for j in policy.jurisdictions.all())
    regions = sorted(r.name for r in policy.regions.all())
    certifications = sorted(c.name for c in policy.certifications.all())
    lines = [
        f"Jurisdictions: {', '.join(jurisdictions)}." if jurisdictions else "Jurisdictions: any.",
        f"Regions: only {', '.join(regions)}." if regions else "Regions: any within those jurisdictions.",
    ]
    if certifications:
        lines.append(f"Required certifications: {', '.join(certifications)}.")
    return lines
