"""What the server list and the page frame show: the filter as chosen, rows linking to their
servers, the switchers with every organization and project, and names escaped everywhere."""

from __future__ import annotations

import re

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from portal.tenancy.models import Membership, Organization, Project, Role
from tests.factories import InstanceFactory, MembershipFactory, OrganizationFactory, ProjectFactory

HOSTILE = '<script>alert("x")</script>'


def _list_url(project) -> str:
    return reverse("compute:instance_list", args=[project.organization.slug, project.slug])


def _tags(html: str) -> str:
    return re.sub(r">\s+<", "><", html.strip())


def _form_markup(page: str) -> str:
    return _tags(re.search(r'<form method="get" class="card filters".*?</form>', page, re.S).group(0))


def test_the_chosen_zone_is_selected_and_a_made_up_one_marked_invalid(project, owner, client_as, catalog):
    client = client_as(owner)
    zone = catalog["fra1-a"]
    page = client.get(_list_url(project), {"zone": zone.pk}).content.decode()
    assert f'<option value="{zone.pk}" selected>fra1-a</option>' in page
    assert page.count(" selected>") == 2  # the zone, and "Any status"
    made_up = _form_markup(client.get(_list_url(project), {"zone": "99999"}).content.decode())
    assert re.search(r'<select name="zone" aria-invalid="true"[^>]* id="id_zone">', made_up)
    assert '<option value="">Any zone</option>' in made_up  # nothing selected: the browser shows the first


def test_rows_link_to_the_server_and_show_the_status_badge(project, owner, client_as):
    servers = [
        InstanceFactory(project=project, status="provisioning"),
        InstanceFactory(project=project, status="running"),
        InstanceFactory(project=project, status="error", fault_message="No capacity <left>"),
    ]
    page = client_as(owner).get(_list_url(project)).content.decode()
    for server in servers:
        assert f'<a href="{server.get_absolute_url()}">' in page
        badge = render_to_string("compute/_status.html", {"instance": server}).strip()
        assert badge in page
    assert page.count('<span class="spinner" aria-hidden="true">') == 1
    assert "No capacity &lt;left&gt;" in page


def test_names_are_escaped_in_rows_and_switchers(project, owner, client_as):
    InstanceFactory(project=project, name=HOSTILE)
    hostile_org = OrganizationFactory(name=HOSTILE, slug="hostile")
    MembershipFactory(organization=hostile_org, user=owner)
    ProjectFactory(organization=project.organization, name=HOSTILE, slug="hostile-project")
    page = client_as(owner).get(_list_url(project)).content.decode()
    assert HOSTILE not in page
    assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") == 3  # row, org, project


def _switcher_entries(page: str) -> list[tuple[str, str, bool]]:
    return [
        (href, re.sub(r"<[^>]+>", "", text).strip(), bool(current))
        for href, current, text in re.findall(
            r'<a role="menuitem" href="([^"]+)"( aria-current="true")?>(.*?)</a>', page
        )
    ]


@pytest.mark.parametrize("page_name", ["compute:instance_list", "tenancy:project_dashboard"])
def test_switchers_list_every_organization_and_project_with_links_and_roles(
    project, owner, client_as, page_name
):
    # The server list gives the frame its checked access; the project dashboard does not.
    other = OrganizationFactory(name="Beta Labs", slug="beta-labs")
    MembershipFactory(organization=other, user=owner, role="viewer")
    ProjectFactory(organization=other, name="Not listed here", slug="elsewhere")
    analytics = ProjectFactory(organization=project.organization, name="Analytics", slug="analytics")
    page = client_as(owner).get(reverse(page_name, args=[project.organization.slug, project.slug]))
    entries = _switcher_entries(page.content.decode())
    org = project.organization
    assert entries[:2] == [
        (org.get_absolute_url(), f"{org.name} Owner", True),  # "Acme Research" before "Beta Labs"
        (other.get_absolute_url(), "Beta Labs Viewer", False),
    ]
    projects = [entry for entry in entries if "/p/" in entry[0]]
    assert projects == [
        (analytics.get_absolute_url(), "Analytics", False),
        (project.get_absolute_url(), "Web shop", True),
    ]


def test_the_api_docs_still_list_the_organizations(owner, client_as, org):
    page = client_as(owner).get("/api/v1/docs").content.decode()
    assert f"{org.name} → API tokens" in page


def test_a_role_change_and_renames_show_in_the_frame_on_the_next_request(project, owner, viewer, client_as):
    client = client_as(viewer)
    url = _list_url(project)
    before = client.get(url).content.decode()
    assert "You are <strong>Viewer</strong> here." in before and "+ New project" not in before
    Membership.objects.filter(user=viewer).update(role=Role.ADMIN)
    Organization.objects.filter(pk=project.organization.pk).update(name="Acme Renamed")
    Project.objects.filter(pk=project.pk).update(name="Storefront")
    after = client.get(url).content.decode()
    assert "You are <strong>Admin</strong> here." in after and "+ New project" in after
    assert '>Acme Renamed <span class="muted">Admin</span>' in after  # the organization switcher
    assert "Projects in Acme Renamed" in after
    assert '<span class="switcher-value">Storefront</span>' in after
