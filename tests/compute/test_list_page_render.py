"""The server list page writes some markup itself instead of asking Django for it (filter selects,
status badges, row and switcher links from one reverse() each): the same markup, links and escaping."""

from __future__ import annotations

import re

import pytest
from django.template.loader import render_to_string
from django.urls import resolve, reverse

from portal.compute.models.instances import with_absolute_urls
from portal.compute.views.instances import InstanceFilter
from tests.factories import InstanceFactory, MembershipFactory, OrganizationFactory, ProjectFactory

HOSTILE = '<script>alert("x")</script>'


def _list_url(project) -> str:
    return reverse("compute:instance_list", args=[project.organization.slug, project.slug])


def _tags(html: str) -> str:
    return re.sub(r">\s+<", "><", html.strip())


def _form_markup(page: str) -> str:
    return _tags(re.search(r'<form method="get" class="card filters".*?</form>', page, re.S).group(0))


@pytest.mark.parametrize(
    "query", [{}, {"status": "stopped"}, {"q": "web", "status": "running"}, {"status": "bogus"}]
)
def test_filter_fields_are_the_markup_django_widgets_render(project, owner, client_as, catalog, query):
    page = client_as(owner).get(_list_url(project), query).content.decode()
    form = InstanceFilter(query or None)
    form.is_valid()
    markup = _form_markup(page)
    for name in ("q", "status", "zone"):
        # Except that an invalid field is not described by an error element the page never prints.
        widget = _tags(str(form[name])).replace(f' aria-describedby="id_{name}_error"', "")
        assert widget in markup, name


def test_the_chosen_zone_is_selected_and_a_made_up_one_marked_invalid(project, owner, client_as, catalog):
    client = client_as(owner)
    zone = catalog["fra1-a"]
    page = client.get(_list_url(project), {"zone": zone.pk}).content.decode()
    assert f'<option value="{zone.pk}" selected>fra1-a</option>' in page
    assert page.count(" selected>") == 2  # the zone, and "Any status"
    made_up = _form_markup(client.get(_list_url(project), {"zone": "99999"}).content.decode())
    assert '<select name="zone" aria-invalid="true" id="id_zone">' in made_up
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


def test_row_links_from_one_reverse_match_get_absolute_url_even_when_a_slug_reads_like_an_id(db):
    org = OrganizationFactory(slug="00000000-0000-0000-0000-000000000000")
    for project in (
        ProjectFactory(organization=org, slug="web-shop"),
        ProjectFactory(organization=org, slug="00000000-0000-0000-0000-000000000000"),
    ):
        InstanceFactory(project=project)
        for server in with_absolute_urls(list(project.instances.all()), project):
            assert server.absolute_url == server.get_absolute_url()
            assert server.absolute_url.endswith(f"/{server.pk}/")


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


def test_the_frame_loads_membership_models_only_for_a_page_that_prints_them(
    project, owner, rf, django_assert_num_queries
):
    from portal.core.context_processors import portal, remember_access
    from portal.tenancy.access import project_access

    url = _list_url(project)
    request = rf.get(url)
    request.user = owner
    request.resolver_match = resolve(url)
    remember_access(request, project_access(owner, project.organization.slug, project.slug))
    with django_assert_num_queries(1):
        frame = portal(request)
    assert frame["nav_org"] == project.organization and frame["nav_project"] == project
    with django_assert_num_queries(1):
        assert [m.organization for m in frame["nav_memberships"]] == [project.organization]
