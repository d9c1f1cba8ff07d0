"""What you see on the server list is fresh: whatever changes a server (a queryset update, as the
runner writes, a save, a delete), the catalog, the project or the viewer's role shows on the next
load, and nothing of one project, filter or page reaches another."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.urls import reverse

from portal.catalog.models import Flavor, Zone
from portal.compute.models import Instance
from portal.tenancy.models import Membership, Role
from tests.factories import InstanceFactory, ProjectFactory


def _url(project) -> str:
    return reverse("compute:instance_list", args=[project.organization.slug, project.slug])


@pytest.fixture
def servers(project, catalog):
    return [InstanceFactory(project=project, name=f"web-{n}") for n in range(3)]


@pytest.fixture
def page(client_as, owner, project):
    client = client_as(owner)

    def load(query=None, **headers) -> str:
        response = client.get(_url(project), query or {}, **headers)
        assert response.status_code == (286 if headers else 200)  # 286: settled, htmx stops polling
        html = response.content.decode()
        assert "{#" not in html and "{%" not in html  # no template comment or tag leaks
        return html

    return load


def test_a_bulk_status_update_shows_on_the_next_load(page, servers):
    assert page().count("status-running") == 3
    # As the runner writes it: a queryset update, which sends no signal.
    Instance.objects.filter(pk=servers[0].pk).update(status="stopped")
    after = page()
    assert after.count("status-running") == 2
    assert after.count("status-stopped") == 1


def test_a_saved_change_a_new_server_and_a_deleted_one_show(page, servers, project):
    page()
    servers[1].name = "renamed-db"
    servers[1].save(update_fields=["name"])
    assert "renamed-db" in page()
    InstanceFactory(project=project, name="fresh-one")
    assert "fresh-one" in page()
    Instance.objects.bulk_create([InstanceFactory.build(project=project, name="bulk-made")])
    assert "bulk-made" in page()
    servers[2].delete()
    assert "web-2" not in page()


def test_a_write_inside_a_transaction_shows_to_later_reads(page, servers):
    page()
    with transaction.atomic():
        Instance.objects.filter(pk=servers[0].pk).update(name="in-a-transaction")
    assert "in-a-transaction" in page()


def test_catalog_renames_show(page, servers):
    assert "fra1-a" in page()
    flavor = servers[0].flavor
    flavor.name = "Renamed size"
    flavor.save()
    assert page().count("Renamed size") == 3
    Flavor.objects.filter(pk=flavor.pk).update(name="Updated in bulk")
    assert "Updated in bulk" in page()
    Zone.objects.filter(code="fra1-a").update(code="fra1-z")
    assert "fra1-z" in page() and "fra1-a</" not in page()


def test_a_renamed_project_shows(page, servers, project):
    page()
    project.name = "Storefront"
    project.save()
    assert "Project Storefront" in page()


def test_the_launch_button_follows_the_viewer_role(client_as, viewer, project, servers):
    client = client_as(viewer)
    launch = reverse("compute:launch", args=[project.organization.slug, project.slug])
    assert launch not in client.get(_url(project)).content.decode()
    Membership.objects.filter(user=viewer).update(role=Role.MEMBER)
    assert launch in client.get(_url(project)).content.decode()


def test_projects_filters_pages_and_htmx_are_kept_apart(page, servers, project, client_as, owner, catalog):
    other = ProjectFactory(organization=project.organization, name="Other", slug="other")
    InstanceFactory(project=other, name="theirs-1")
    client = client_as(owner)
    assert "web-0" in page()
    theirs = client.get(_url(other)).content.decode()
    assert "theirs-1" in theirs and "web-0" not in theirs
    filtered = page({"q": "web-1"})
    assert "web-1" in filtered and "web-0" not in filtered
    assert "web-0" in page()
    partial = page(HTTP_HX_REQUEST="true")
    assert "<html" not in partial and "web-0" in partial
    assert "<html" in page()


@pytest.mark.parametrize("value", ["²", "9" * 5000, "-1", "1.5"])
def test_odd_page_numbers_are_answered_not_a_500(page, servers, value):
    assert "web-0" in page({"page": value})


def test_a_server_moved_to_another_project_leaves_both_lists(page, servers, project, client_as, owner):
    other = ProjectFactory(organization=project.organization, slug="other")
    client = client_as(owner)
    page()
    assert "web-0" not in client.get(_url(other)).content.decode()
    Instance.objects.filter(pk=servers[0].pk).update(project=other)
    assert "web-0" not in page()
    assert "web-0" in client.get(_url(other)).content.decode()
