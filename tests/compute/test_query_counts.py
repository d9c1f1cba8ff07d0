"""SQL queries of the server list and detail pages: the same for 10 and 60 servers, and few.

Counted as a signed-in owner's repeat request: every statement the request sends. One of them is
the middleware's before any view runs — the user (the session comes from the cache, `cached_db`;
session activity is written at most once a minute, see portal/accounts/middleware.py). Then the
access check (membership with its organization, the project), the page's own reads, and the
frame's (memberships with their organizations and whether the address is confirmed; the
organization's projects):

- list: Paginator's COUNT and the page of rows, the zone filter's choices — 8 in all;
- detail: the server, its attached volumes, its usage, its operations — 9 in all.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.compute.models import Instance
from tests.factories import InstanceFactory, MembershipFactory, OrganizationFactory, ProjectFactory

LIST_MAX_QUERIES = 8
# The server page also lists its volumes (+1), its snapshots (+1), asks its zone's backend once
# what the zone can do for all its cards (+1: snapshots, restore, firewall, rescue, consoles,
# password reset, networks), the project's images its disk may be restored from (+1), for its
# firewall card the project's rule sets to switch to (+1), and for its private networks card the
# networks it is on with its address in each, and those of its zone it may join (+2).
DETAIL_MAX_QUERIES = 15

# Not `db`: in a test transaction Django logs SAVEPOINTs where production logs BEGIN and COMMIT,
# the same number, but this way the count is the production one statement for statement.
pytestmark = pytest.mark.django_db(transaction=True)


def _add_servers(project, n: int) -> None:
    template = InstanceFactory(project=project)
    Instance.objects.bulk_create(
        Instance(
            project=project,
            name=f"bulk-{i}",
            zone=template.zone,
            flavor=template.flavor,
            image=template.image,
            root_disk_gib=50,
            status="running",
            addresses=[f"100.64.1.{i + 2}"],
        )
        for i in range(n - 1)
    )


def _queries(client, url: str) -> list[str]:
    """The statements one request sends, copied as soon as it ends: a CaptureQueriesContext only
    points into the connection's log, which the next request empties."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    statements = [query["sql"] for query in queries.captured_queries]
    assert statements, "no statement captured: the count would measure nothing"
    return statements


def _listing(statements: list[str]) -> str:
    return "\n".join(f"{n}. {sql[:300]}" for n, sql in enumerate(statements, 1))


@pytest.fixture
def owner_client(project, owner, client_as):
    # A second organization and project, so the switchers have something to list.
    other = OrganizationFactory(name="Beta Labs", slug="beta")
    MembershipFactory(organization=other, user=owner)
    ProjectFactory(organization=project.organization, name="Analytics", slug="analytics")
    return client_as(owner)


def test_list_page_queries_do_not_grow_with_servers(project, owner_client):
    url = reverse("compute:instance_list", args=[project.organization.slug, project.slug])
    _add_servers(project, 10)
    owner_client.get(url)
    few = _queries(owner_client, url)
    _add_servers(project, 50)
    many = _queries(owner_client, url)
    page = owner_client.get(url).content.decode()
    assert page.count('class="status status-running"') == 50  # a page of 50 out of 60
    assert "Page 1 of 2 · 60 servers" in page
    assert len(few) == len(many), f"10 servers:\n{_listing(few)}\n\n60 servers:\n{_listing(many)}"
    assert len(many) <= LIST_MAX_QUERIES, _listing(many)


def test_detail_page_queries_do_not_grow_with_servers(project, owner_client):
    _add_servers(project, 10)
    url = project.instances.first().get_absolute_url()
    owner_client.get(url)
    few = _queries(owner_client, url)
    _add_servers(project, 50)
    many = _queries(owner_client, url)
    assert len(few) == len(many), f"10 servers:\n{_listing(few)}\n\n60 servers:\n{_listing(many)}"
    assert len(many) <= DETAIL_MAX_QUERIES, _listing(many)


def test_the_header_still_shows_organizations_projects_and_role(project, owner_client):
    _add_servers(project, 3)
    page = owner_client.get(
        reverse("compute:instance_list", args=[project.organization.slug, project.slug])
    ).content.decode()
    assert "Beta Labs" in page and "Acme Research" in page  # organization switcher
    assert "Analytics" in page and "Web shop" in page  # project switcher
    assert "+ New project" in page  # owner's links
    assert "You are <strong>Owner</strong> here." in page
    assert "Confirm your e-mail address" not in page  # verified: no banner


def test_the_unverified_banner_still_shows(project, owner, owner_client):
    owner.emailaddress_set.update(verified=False)
    page = owner_client.get(
        reverse("compute:instance_list", args=[project.organization.slug, project.slug])
    ).content.decode()
    assert "Confirm your e-mail address" in page


def test_a_later_page_and_a_page_past_the_end(project, owner_client):
    _add_servers(project, 60)
    url = reverse("compute:instance_list", args=[project.organization.slug, project.slug])
    second = owner_client.get(url + "?page=2").content.decode()
    assert second.count('class="status status-running"') == 10
    assert "Page 2 of 2 · 60 servers" in second
    past = owner_client.get(url + "?page=9").content.decode()
    assert "Page 2 of 2 · 60 servers" in past  # Paginator.get_page: the last page
    for made_up in ("0", "-3", "99999999999999999999999"):
        assert "Page 2 of 2 · 60 servers" in owner_client.get(f"{url}?page={made_up}").content.decode()
    assert owner_client.get(url + "?page=x").content.decode().count("status-running") == 50
