from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.audit.services import audit_record
from portal.tenancy.models import Project


def _rows(response) -> str:
    """The log table only, not the filter form's option labels."""
    html = response.content.decode()
    return html[html.index("<tbody>") : html.index("</tbody>")] if "<tbody>" in html else ""


@pytest.fixture
def events(org, project, owner, admin_user):
    audit_record(
        action=AuditAction.PROJECT_CREATED, actor=owner, organization=org, project=project, target=project
    )
    audit_record(
        action=AuditAction.MEMBER_ROLE_CHANGED,
        actor=admin_user,
        organization=org,
        changes={"role": ["member", "viewer"]},
    )
    return AuditEvent.objects.all()


def test_owner_sees_and_filters_the_log(org, events, owner, admin_user, client_as):
    url = reverse("tenancy:audit_log", kwargs={"org_slug": org.slug})
    client = client_as(owner)
    page = _rows(client.get(url))
    assert "Project created" in page and "Member role changed" in page
    filtered = _rows(client.get(url, {"actor": "admin@"}))
    assert "Member role changed" in filtered and "Project created" not in filtered
    by_action = _rows(client.get(url, {"action": "project.created"}))
    assert "Project created" in by_action and "Member role changed" not in by_action


def test_bad_filter_is_a_400_not_a_500(org, events, owner, client_as):
    url = reverse("tenancy:audit_log", kwargs={"org_slug": org.slug})
    response = client_as(owner).get(url, {"since": "yesterday-ish", "action": "nonsense"})
    assert response.status_code == 400
    assert b"Enter a valid date" in response.content


def test_members_cannot_read_the_log(org, events, member, client_as):
    assert (
        client_as(member).get(reverse("tenancy:audit_log", kwargs={"org_slug": org.slug})).status_code == 403
    )


def test_log_shows_only_this_organization(org, events, outsider, owner, client_as):
    audit_record(
        action=AuditAction.ORG_UPDATED, actor=outsider, organization=outsider.memberships.get().organization
    )
    page = _rows(client_as(owner).get(reverse("tenancy:audit_log", kwargs={"org_slug": org.slug})))
    assert "owner@example.com" in page and "outsider@example.com" not in page


def test_events_are_append_only(events):
    event = events.first()
    event.target_repr = "rewritten"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.update(target_repr="x")


def test_operator_quota_change_in_admin_is_audited(project, admin_client):
    url = reverse("admin:tenancy_project_change", args=[project.pk])
    data = {
        "organization": project.organization.pk,
        "name": project.name,
        "slug": project.slug,
        "description": "",
        "quota_instances": 25,
        "quota_vcpus": project.quota_vcpus,
        "quota_ram_gib": project.quota_ram_gib,
        "quota_volume_gib": project.quota_volume_gib,
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Project.objects.get(pk=project.pk).quota_instances == 25
    event = AuditEvent.objects.get(action="project.quota_changed")
    assert event.changes == {"quota_instances": [10, 25]}
    assert event.project == project


def test_audit_admin_is_read_only(events, admin_client):
    assert site._registry[AuditEvent].has_change_permission(None) is False
    assert admin_client.get(reverse("admin:audit_auditevent_add")).status_code == 403


def test_a_long_log_pages_older_events_keeping_the_filter(org, project, owner, client_as):
    for _ in range(51):
        audit_record(
            action=AuditAction.PROJECT_CREATED, actor=owner, organization=org, project=project, target=project
        )
    url = reverse("tenancy:audit_log", kwargs={"org_slug": org.slug})
    first = client_as(owner).get(url, {"action": "project.created"}).content.decode()
    assert "Page 1 of 2</span>" in first and "← Newer" not in first
    assert 'href="?action=project.created&amp;page=2">Older →</a>' in first
    second = client_as(owner).get(url, {"action": "project.created", "page": 2}).content.decode()
    assert second.count("Project created</td>") + second.count("Project created<br>") == 1
    assert 'page=1">← Newer</a>' in second and "Older →" not in second
