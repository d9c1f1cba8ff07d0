from __future__ import annotations

import pytest
from django.urls import reverse

from portal.audit.models import AuditEvent
from portal.tenancy.models import Membership, Role


def _role_url(org, membership):
    return reverse("tenancy:member_role", kwargs={"org_slug": org.slug, "membership_id": membership.pk})


def _remove_url(org, membership):
    return reverse("tenancy:member_remove", kwargs={"org_slug": org.slug, "membership_id": membership.pk})


def _m(org, user):
    return Membership.objects.get(organization=org, user=user)


@pytest.mark.parametrize(
    "name",
    [
        "tenancy:member_role",
        "tenancy:member_remove",
        "tenancy:invitation_resend",
        "tenancy:invitation_revoke",
    ],
)
def test_actions_refuse_get(name, org, owner, member, client_as):
    kwargs = {"org_slug": org.slug}
    kwargs["membership_id" if name.startswith("tenancy:member_") else "invitation_id"] = 1
    assert client_as(owner).get(reverse(name, kwargs=kwargs)).status_code == 405


@pytest.mark.parametrize("name", ["tenancy:org_leave", "tenancy:invitation_create", "tenancy:project_delete"])
def test_more_actions_refuse_get(name, org, project, owner, client_as):
    kwargs = {"org_slug": org.slug} | ({"project_slug": project.slug} if "project" in name else {})
    assert client_as(owner).get(reverse(name, kwargs=kwargs)).status_code == 405


def test_admin_changes_a_role_and_repeating_it_changes_nothing(org, admin_user, member, client_as):
    client = client_as(admin_user)
    url = _role_url(org, _m(org, member))
    assert client.post(url, {"role": Role.VIEWER}).status_code == 302
    assert client.post(url, {"role": Role.VIEWER}).status_code == 302
    assert _m(org, member).role == Role.VIEWER
    event = AuditEvent.objects.get(action="member.role_changed")
    assert event.changes == {"role": ["member", "viewer"]} and event.actor == admin_user


def test_unknown_role_is_a_400(org, owner, member, client_as):
    response = client_as(owner).post(_role_url(org, _m(org, member)), {"role": "emperor"})
    assert response.status_code == 400
    assert _m(org, member).role == Role.MEMBER


def test_admin_cannot_touch_owners(org, owner, admin_user, member, client_as):
    client = client_as(admin_user)
    assert client.post(_role_url(org, _m(org, member)), {"role": Role.OWNER}).status_code == 403
    assert client.post(_role_url(org, _m(org, owner)), {"role": Role.MEMBER}).status_code == 403
    assert client.post(_remove_url(org, _m(org, owner))).status_code == 403
    assert _m(org, owner).role == Role.OWNER and _m(org, member).role == Role.MEMBER


def test_member_cannot_manage_members(org, member, viewer, client_as):
    response = client_as(member).post(_role_url(org, _m(org, viewer)), {"role": Role.ADMIN})
    assert response.status_code == 403 and b"Owner or Admin" in response.content


def test_the_last_owner_cannot_be_demoted_or_leave(org, owner, client_as):
    other_owner_client = client_as(owner)
    leave = other_owner_client.post(reverse("tenancy:org_leave", kwargs={"org_slug": org.slug}))
    assert leave.status_code == 409 and b"at least one owner" in leave.content
    assert Membership.objects.filter(organization=org, role=Role.OWNER).count() == 1


def test_owner_promotes_another_owner_then_can_leave(org, owner, admin_user, client_as):
    client = client_as(owner)
    assert client.post(_role_url(org, _m(org, admin_user)), {"role": Role.OWNER}).status_code == 302
    response = client.post(reverse("tenancy:org_leave", kwargs={"org_slug": org.slug}))
    assert response.status_code == 302
    assert not Membership.objects.filter(organization=org, user=owner).exists()
    assert AuditEvent.objects.filter(action="member.left", actor=owner).exists()


def test_owner_cannot_demote_the_only_owner_through_someone_else(org, owner, client_as):
    # An owner demoting themselves is the same rule as leaving.
    response = client_as(owner).post(_role_url(org, _m(org, owner)), {"role": Role.ADMIN})
    assert response.status_code == 409
    assert _m(org, owner).role == Role.OWNER


def test_remove_member_revokes_access(org, owner, member, project, client_as):
    assert client_as(owner).post(_remove_url(org, _m(org, member))).status_code == 302
    assert client_as(member).get(project.get_absolute_url()).status_code == 404
    assert AuditEvent.objects.filter(action="member.removed", target_repr__contains=member.email).exists()


def test_viewer_may_leave(org, owner, viewer, client_as):
    response = client_as(viewer).post(reverse("tenancy:org_leave", kwargs={"org_slug": org.slug}))
    assert response.status_code == 302
    assert not Membership.objects.filter(organization=org, user=viewer).exists()


def test_members_page_shows_controls_only_to_managers(org, owner, viewer, member, client_as):
    url = reverse("tenancy:members", kwargs={"org_slug": org.slug})
    assert b"Send invitation" in client_as(owner).get(url).content
    page = client_as(viewer).get(url).content
    assert b"Send invitation" not in page and member.email.encode() in page


def test_the_last_owner_is_told_why_they_cannot_leave(org, owner, client_as):
    page = client_as(owner).get(reverse("tenancy:members", kwargs={"org_slug": org.slug})).content.decode()
    assert "You are the only owner" in page
    assert reverse("tenancy:org_leave", kwargs={"org_slug": org.slug}) not in page


def test_navigation_offers_only_what_the_role_may_use(org, project, viewer, owner, client_as):
    settings_url = reverse("tenancy:org_settings", kwargs={"org_slug": org.slug})
    audit_url = reverse("tenancy:audit_log", kwargs={"org_slug": org.slug})
    new_project = reverse("tenancy:project_create", kwargs={"org_slug": org.slug})
    viewer_page = client_as(viewer).get(project.get_absolute_url()).content.decode()
    owner_page = client_as(owner).get(project.get_absolute_url()).content.decode()
    for url in (settings_url, audit_url, new_project):
        assert url not in viewer_page
        assert url in owner_page
