from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from portal.catalog.models import Jurisdiction, Region
from portal.residency import services
from portal.residency.placement import placement_decision
from portal.tenancy.access import project_access


def test_without_a_policy_every_zone_is_allowed(project, catalog):
    for zone in catalog.values():
        decision = placement_decision(project, zone)
        assert decision.allowed and decision.reasons == ()


def test_jurisdiction_policy_blocks_with_a_plain_reason(project, catalog, make_policy):
    make_policy(name="EU only", jurisdictions=["eu"])
    assert placement_decision(project, catalog["fra1-a"])
    decision = placement_decision(project, catalog["iad1-a"])
    assert not decision
    assert decision.reason == (
        "Blocked by organization policy 'EU only': Ashburn is in United States jurisdiction "
        "(allowed: European Union)."
    )


def test_region_policy(project, catalog, make_policy):
    make_policy(name="Frankfurt only", regions=["fra1"])
    assert placement_decision(project, catalog["fra1-b"])
    decision = placement_decision(project, catalog["par1-a"])
    assert "Paris is not one of the allowed regions (Frankfurt)" in decision.reason


def test_certification_policy(project, catalog, make_policy):
    make_policy(name="Health data", certifications=["hipaa"])
    assert placement_decision(project, catalog["iad1-a"])
    decision = placement_decision(project, catalog["fra1-a"])
    assert decision.reason == (
        "Blocked by organization policy 'Health data': Frankfurt lacks the required certification HIPAA-eligible."
    )


def test_project_policy_narrows_and_both_reasons_are_given(project, catalog, make_policy):
    make_policy(name="EU only", jurisdictions=["eu"])
    make_policy(project=project, name="Frankfurt", regions=["fra1"])
    assert placement_decision(project, catalog["fra1-a"])
    assert "project policy 'Frankfurt'" in placement_decision(project, catalog["ams1-a"]).reason
    both = placement_decision(project, catalog["iad1-a"])
    assert len(both.reasons) == 2 and both.reasons[0].startswith("Blocked by organization policy 'EU only'")


def test_a_project_policy_cannot_widen_even_if_stored(project, catalog, make_policy):
    # Whatever a project policy says, the organization's still applies (both must allow).
    make_policy(name="EU only", jurisdictions=["eu"])
    make_policy(project=project, name="Anything", jurisdictions=["us", "eu"])
    assert not placement_decision(project, catalog["iad1-a"])


def test_the_service_refuses_a_wider_project_policy_with_the_reason(project, owner, catalog, make_policy):
    make_policy(name="EU only", jurisdictions=["eu"])
    access = project_access(owner, project.organization.slug, project.slug)
    with pytest.raises(ValidationError) as refused:
        services.policy_update(
            access=access,
            name="US too",
            jurisdictions=list(Jurisdiction.objects.filter(code__in=["eu", "us"])),
            regions=[],
            certifications=[],
        )
    message = refused.value.message_dict["jurisdictions"][0]
    assert "organization policy 'EU only' does not allow United States" in message
    assert "can only narrow" in message


def test_regions_outside_the_policys_own_jurisdictions_are_refused(org, owner, catalog):
    from portal.tenancy.access import org_access

    with pytest.raises(ValidationError) as refused:
        services.policy_update(
            access=org_access(owner, org.slug),
            name="Muddled",
            jurisdictions=list(Jurisdiction.objects.filter(code="eu")),
            regions=list(Region.objects.filter(code="lon1")),
            certifications=[],
        )
    assert "London is in United Kingdom jurisdiction" in refused.value.message_dict["regions"][0]
