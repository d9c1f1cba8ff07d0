from __future__ import annotations

from django.urls import reverse

from portal.audit.models import AuditEvent
from portal.tenancy.models import Organization, Project


def test_admin_creates_a_project_with_default_quotas(org, admin_user, client_as, settings):
    url = reverse("tenancy:project_create", kwargs={"org_slug": org.slug})
    response = client_as(admin_user).post(url, {"name": "  Data   lab ", "description": "ML"})
    project = Project.objects.get(organization=org)
    assert response.status_code == 302 and response["Location"] == project.get_absolute_url()
    assert (project.name, project.slug) == ("Data lab", "data-lab")
    assert project.quota_instances == settings.PORTAL_DEFAULT_QUOTAS["instances"]
    assert AuditEvent.objects.filter(action="project.created", project=project).exists()


def test_same_name_gets_a_distinct_address(org, owner, client_as):
    client = client_as(owner)
    url = reverse("tenancy:project_create", kwargs={"org_slug": org.slug})
    client.post(url, {"name": "Web"})
    client.post(url, {"name": "Web"})
    assert sorted(Project.objects.values_list("slug", flat=True)) == ["web", "web-2"]


def test_blank_project_name_is_a_400_with_a_message(org, owner, client_as):
    url = reverse("tenancy:project_create", kwargs={"org_slug": org.slug})
    response = client_as(owner).post(url, {"name": "   "})
    assert response.status_code == 400 and b"This field is required" in response.content
    assert not Project.objects.exists()


def test_member_cannot_create_projects(org, member, client_as):
    url = reverse("tenancy:project_create", kwargs={"org_slug": org.slug})
    assert client_as(member).post(url, {"name": "Nope"}).status_code == 403
    assert not Project.objects.exists()


def test_rename_is_audited_once(org, project, owner, client_as):
    url = reverse("tenancy:project_settings", kwargs={"org_slug": org.slug, "project_slug": project.slug})
    client = client_as(owner)
    client.post(url, {"name": "Storefront", "description": ""})
    client.post(url, {"name": "Storefront", "description": ""})
    project.refresh_from_db()
    assert project.name == "Storefront" and project.slug == "web-shop"
    event = AuditEvent.objects.get(action="project.updated")
    assert event.changes["name"] == ["Web shop", "Storefront"]


def test_delete_needs_the_typed_confirmation(org, project, owner, client_as):
    url = reverse("tenancy:project_delete", kwargs={"org_slug": org.slug, "project_slug": project.slug})
    client = client_as(owner)
    refused = client.post(url, {"confirm": "yes"})
    assert refused.status_code == 400 and b"to confirm" in refused.content
    assert Project.objects.filter(pk=project.pk).exists()
    assert client.post(url, {"confirm": project.slug}).status_code == 302
    assert not Project.objects.filter(pk=project.pk).exists()
    event = AuditEvent.objects.get(action="project.deleted")
    assert event.target_repr == "Web shop" and event.organization == org
    assert client.post(url, {"confirm": project.slug}).status_code == 404


def test_organization_rename_keeps_the_address(org, owner, client_as):
    url = reverse("tenancy:org_settings", kwargs={"org_slug": org.slug})
    assert client_as(owner).post(url, {"name": "Acme Labs"}).status_code == 302
    assert Organization.objects.get(pk=org.pk).slug == "acme"
    assert AuditEvent.objects.filter(action="organization.updated").count() == 1


def test_dashboard_shows_quotas_and_members(org, project, member, viewer, client_as):
    page = client_as(viewer).get(project.get_absolute_url())
    assert page.status_code == 200
    text = page.content.decode()
    assert "of 10" in text and "of 128 GiB" in text
    assert member.email in text
    assert "Settings</a>" not in text.split("<main")[1]  # a viewer is not offered settings


def test_switchers_list_only_my_organizations_and_projects(org, project, owner, outsider, client_as):
    page = client_as(owner).get(project.get_absolute_url()).content.decode()
    assert "Acme Research" in page and "Web shop" in page
    assert "Other Corp" not in page and "Theirs" not in page
