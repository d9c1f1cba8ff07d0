from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.audit.models import AuditEvent
from portal.catalog.models import Jurisdiction, Zone
from portal.residency.models import ResidencyPolicy
from portal.tenancy.models import Project


@pytest.fixture
def eu_only(make_policy, catalog):
    return make_policy(name="EU only", jurisdictions=["eu"])


def _default_zone_url(project):
    return reverse(
        "residency:project_default_zone",
        kwargs={"org_slug": project.organization.slug, "project_slug": project.slug},
    )


def _settings_url(project):
    return reverse(
        "tenancy:project_settings",
        kwargs={"org_slug": project.organization.slug, "project_slug": project.slug},
    )


def test_forged_post_for_a_forbidden_zone_is_refused_with_the_reason_and_audited(
    project, owner, catalog, eu_only, client_as
):
    response = client_as(owner).post(_default_zone_url(project), {"zone": catalog["iad1-a"].pk})
    assert response.status_code == 403
    assert "Ashburn is in United States jurisdiction" in response.content.decode()
    assert Project.objects.get(pk=project.pk).default_zone is None
    event = AuditEvent.objects.get(action="residency.placement_denied")
    assert event.project == project and event.actor == owner and event.target_repr == "iad1-a"
    assert "Ashburn" in event.changes["reason"][1]


@pytest.mark.parametrize("value", ["987654", "abc", "-1", "1.5", "²"])
def test_unknown_zone_ids_are_a_400_and_audited(project, owner, catalog, client_as, value):
    response = client_as(owner).post(_default_zone_url(project), {"zone": value})
    assert response.status_code == 400
    assert "Choose one of the zones listed" in response.content.decode()
    assert Project.objects.get(pk=project.pk).default_zone is None
    event = AuditEvent.objects.get(action="residency.placement_denied")
    assert event.changes["reason"][1] == "No such zone."


def test_a_zone_in_a_hidden_region_is_unknown(project, owner, catalog, client_as):
    region = catalog["fra1-a"].region
    region.is_active = False
    region.save()
    response = client_as(owner).post(_default_zone_url(project), {"zone": catalog["fra1-a"].pk})
    assert response.status_code == 400 and Project.objects.get(pk=project.pk).default_zone is None


def test_a_forbidden_zone_is_refused_for_the_policy_even_when_sold_out(
    project, owner, catalog, eu_only, client_as
):
    response = client_as(owner).post(_default_zone_url(project), {"zone": catalog["sin1-b"].pk})
    assert (
        response.status_code == 403 and "Singapore is in Singapore jurisdiction" in response.content.decode()
    )
    assert AuditEvent.objects.filter(action="residency.placement_denied").count() == 1


def test_saving_with_no_zone_chosen_keeps_the_default_and_clear_clears(project, owner, catalog, client_as):
    client = client_as(owner)
    client.post(_default_zone_url(project), {"zone": catalog["fra1-a"].pk})
    response = client.post(_default_zone_url(project), {})
    assert response.status_code == 400 and "Choose a zone." in response.content.decode()
    assert Project.objects.get(pk=project.pk).default_zone == catalog["fra1-a"]
    assert client.post(_default_zone_url(project), {"action": "clear"}).status_code == 302
    assert Project.objects.get(pk=project.pk).default_zone is None


def test_a_sold_out_zone_is_refused(project, owner, catalog, client_as):
    response = client_as(owner).post(_default_zone_url(project), {"zone": catalog["par1-b"].pk})
    assert response.status_code == 409 and "sold out" in response.content.decode()


def test_an_allowed_zone_is_saved_once_and_audited(project, owner, catalog, eu_only, client_as):
    client = client_as(owner)
    for _ in range(2):
        assert client.post(_default_zone_url(project), {"zone": catalog["fra1-a"].pk}).status_code == 302
    assert Project.objects.get(pk=project.pk).default_zone == catalog["fra1-a"]
    event = AuditEvent.objects.get(action="project.updated")
    assert event.changes == {"default_zone": [None, "fra1-a"]}


def test_members_cannot_change_the_default_zone(project, member, catalog, client_as):
    assert (
        client_as(member).post(_default_zone_url(project), {"zone": catalog["fra1-a"].pk}).status_code == 403
    )


def test_picker_shows_allowed_forbidden_and_sold_out_zones(project, owner, catalog, eu_only, client_as):
    page = client_as(owner).get(_settings_url(project)).content.decode()
    fra, iad, sold = catalog["fra1-a"], catalog["iad1-a"], catalog["par1-b"]
    assert f'name="zone" value="{fra.pk}">' in page  # selectable
    assert f'value="{iad.pk}"' not in page  # forbidden zones offer no input at all
    assert "Ashburn is in United States jurisdiction (allowed: European Union)" in page
    assert f'name="zone" value="{sold.pk}" disabled>' in page
    assert "Sold out right now. Try par1-a instead." in page
    assert 'class="pin pin-forbidden" data-region="iad1"' in page
    assert 'class="pin pin-available" data-region="fra1"' in page
    assert 'href="#region-fra1"' in page  # without JavaScript a pin leads to its region's radios


def test_picker_query_count_does_not_grow_with_the_catalog(project, owner, catalog, eu_only, client_as):
    client = client_as(owner)
    client.get(_settings_url(project))  # warm the session
    with CaptureQueriesContext(connection) as before:
        client.get(_settings_url(project))
    region = catalog["fra1-a"].region
    Zone.objects.bulk_create(Zone(region=region, code=f"fra1-x{i}") for i in range(20))
    with CaptureQueriesContext(connection) as after:
        page = client.get(_settings_url(project))
    assert "fra1-x19" in page.content.decode()
    assert len(after) == len(before) <= 25


def _policy_url(org):
    return reverse("residency:org_residency", kwargs={"org_slug": org.slug})


@pytest.mark.parametrize("who", ["member", "viewer"])
def test_policy_edits_by_members_and_viewers_are_refused(org, users, catalog, client_as, who):
    eu = Jurisdiction.objects.get(code="eu")
    response = client_as(users[who]).post(_policy_url(org), {"name": "Mine", "jurisdictions": [eu.pk]})
    assert response.status_code == 403
    assert not ResidencyPolicy.objects.exists()


def test_owner_sets_the_organization_policy_and_it_is_audited(org, owner, catalog, client_as):
    eu = Jurisdiction.objects.get(code="eu")
    client = client_as(owner)
    assert client.post(_policy_url(org), {"name": "EU only", "jurisdictions": [eu.pk]}).status_code == 302
    assert client.post(_policy_url(org), {"name": "EU only", "jurisdictions": [eu.pk]}).status_code == 302
    event = AuditEvent.objects.get(action="residency.policy_changed")
    assert event.actor == owner
    assert event.changes == {"name": ["", "EU only"], "jurisdictions": ["any", "European Union"]}
    page = client.get(_policy_url(org)).content.decode()
    assert "Jurisdictions: European Union." in page and "Residency policy changed" in page


def test_forged_policy_ids_are_a_400(org, owner, catalog, client_as):
    response = client_as(owner).post(_policy_url(org), {"jurisdictions": ["987654"]})
    assert response.status_code == 400 and not ResidencyPolicy.objects.exists()


def test_project_policy_form_explains_why_wider_is_refused(org, project, owner, catalog, eu_only, client_as):
    us = Jurisdiction.objects.get(code="us")
    url = reverse("residency:project_residency", kwargs={"org_slug": org.slug, "project_slug": project.slug})
    response = client_as(owner).post(url, {"name": "US", "jurisdictions": [us.pk]})
    assert response.status_code == 400
    assert (
        "does not allow United States: a project&#x27;s policy can only narrow" in response.content.decode()
    )
    assert not ResidencyPolicy.objects.filter(project=project).exists()


def test_tightening_lists_noncompliant_resources_and_mails_owners_once(
    org, project, owner, admin_user, catalog, client_as, django_capture_on_commit_callbacks, mailoutbox
):
    client = client_as(owner)
    client.post(_default_zone_url(project), {"zone": catalog["fra1-a"].pk})
    ch = Jurisdiction.objects.get(code="ch")
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            client.post(_policy_url(org), {"name": "Swiss only", "jurisdictions": [ch.pk]}).status_code == 302
        )
    with django_capture_on_commit_callbacks(execute=True):
        client.post(_policy_url(org), {"name": "Swiss only", "jurisdictions": [ch.pk]})  # no change: no mail
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == [owner.email]  # owners only, not admins
    assert "fra1-a" in mail.body and "Nothing has been moved or deleted" in mail.body
    assert Project.objects.get(pk=project.pk).default_zone == catalog["fra1-a"]  # nothing moved
    dashboard = client.get(project.get_absolute_url()).content.decode()
    assert "1 placement outside your residency policy" in dashboard
    residency = client.get(
        reverse("residency:project_residency", kwargs={"org_slug": org.slug, "project_slug": project.slug})
    ).content.decode()
    assert "Outside policy" in residency and "Frankfurt is in European Union jurisdiction" in residency


def test_a_project_policy_that_leaves_no_zone_is_refused(
    org, project, owner, catalog, make_policy, client_as
):
    make_policy(name="Frankfurt only", regions=["fra1"])
    us = Jurisdiction.objects.get(code="us")
    url = reverse("residency:project_residency", kwargs={"org_slug": org.slug, "project_slug": project.slug})
    response = client_as(owner).post(url, {"name": "US", "jurisdictions": [us.pk]})
    assert response.status_code == 400
    assert "allows no zone at all" in response.content.decode()
    assert not ResidencyPolicy.objects.filter(project=project).exists()


def test_narrowing_the_organization_below_a_project_policy_warns(
    org, project, owner, catalog, make_policy, client_as
):
    make_policy(project=project, name="US", jurisdictions=["us"])
    ch = Jurisdiction.objects.get(code="ch")
    response = client_as(owner).post(
        _policy_url(org), {"name": "Swiss", "jurisdictions": [ch.pk]}, follow=True
    )
    assert (
        "now leave no zone at all" in response.content.decode() and project.name in response.content.decode()
    )


def test_resaving_keeps_a_region_that_was_deactivated(org, owner, catalog, make_policy, client_as):
    from portal.catalog.models import Region

    make_policy(name="EU Frankfurt", jurisdictions=["eu"], regions=["fra1"])
    Region.objects.filter(code="fra1").update(is_active=False)
    client = client_as(owner)
    page = client.get(_policy_url(org)).content.decode()
    fra = Region.objects.get(code="fra1")
    assert f'value="{fra.pk}"' in page  # still offered, still ticked
    eu = Jurisdiction.objects.get(code="eu")
    client.post(_policy_url(org), {"name": "EU Frankfurt", "jurisdictions": [eu.pk], "regions": [fra.pk]})
    policy = ResidencyPolicy.objects.get(project__isnull=True)
    assert list(policy.regions.values_list("code", flat=True)) == ["fra1"]


def test_viewers_do_not_see_who_changed_what(org, owner, viewer, catalog, client_as):
    eu = Jurisdiction.objects.get(code="eu")
    client_as(owner).post(_policy_url(org), {"name": "EU only", "jurisdictions": [eu.pk]})
    page = client_as(viewer).get(_policy_url(org)).content.decode()
    assert "Jurisdictions: European Union." in page
    assert "History" not in page and owner.email not in page


def test_organization_page_queries_do_not_grow_with_projects(org, owner, catalog, make_policy, client_as):
    from tests.factories import ProjectFactory

    make_policy(name="EU only", jurisdictions=["eu"])
    client = client_as(owner)
    ProjectFactory(organization=org, default_zone=catalog["fra1-a"])
    client.get(_policy_url(org))
    with CaptureQueriesContext(connection) as few:
        client.get(_policy_url(org))
    for _ in range(10):
        ProjectFactory(organization=org, default_zone=catalog["iad1-a"])
    with CaptureQueriesContext(connection) as many:
        page = client.get(_policy_url(org)).content.decode()
    assert page.count("outside policy") == 10
    assert len(many) == len(few)
