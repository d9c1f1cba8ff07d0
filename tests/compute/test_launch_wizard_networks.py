"""The launch wizard's private networks: the project's available networks of the chosen zone as
checkboxes (name and range), listed in the summary, joined once the server runs; every bad choice
(another project's, another zone's, one being deleted, an id that is no id) refused at once next to
the field with nothing made; plain words for a zone without them and for a project with none there;
the wizard's queries do not grow with the number of networks."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.catalog.models import Flavor, Image
from portal.compute.models import Instance, Network, NetworkPort, Operation, PortStatus
from tests.factories import ProjectFactory
from tests.steps import drive


@pytest.fixture
def form_data(catalog):
    return {
        "name": "web",
        "count": 1,
        "zone": catalog["fra1-a"].pk,
        "image": Image.objects.get(name="Debian 13").pk,
        "flavor": Flavor.objects.get(code="s-1vcpu-2gb").pk,
        "allow_all_inbound": "on",
    }


@pytest.fixture
def urls(project):
    args = [project.organization.slug, project.slug]
    return {
        "launch": reverse("compute:launch", args=args),
        "check": reverse("compute:launch_check", args=args),
        "networks": reverse("compute:networks", args=args),
    }


def _network(project, zone, name="lan", cidr="10.20.0.0/24", status="available") -> Network:
    return Network.objects.create(
        project=project, name=name, zone=zone, cidr=cidr, status=status, backend_id=f"net-{name}"
    )


@pytest.fixture
def lan(project, catalog):
    return _network(project, catalog["fra1-a"])


def _errors_of(page: str, field: str) -> list[str]:
    block = re.search(rf'<div id="errors-{field}" class="section-errors"[^>]*>(.*?)</div>', page, re.S)
    assert block, f"no error block for {field}"
    return re.findall(r'<p class="error">(.*?)</p>', block.group(1), re.S)


def _summary(page: str) -> str:
    return re.search(r'<aside id="launch-summary".*?</aside>', page, re.S).group(0)


def test_the_zone_offers_the_projects_available_networks_with_their_ranges(
    client_as, owner, form_data, urls, lan, project, catalog
):
    _network(project, catalog["fra1-a"], "db", "10.30.0.0/24")
    _network(project, catalog["fra1-a"], "going", "10.40.0.0/24", status="deleting")
    _network(project, catalog["iad1-a"], "far", "10.50.0.0/24")
    _network(ProjectFactory(organization=project.organization), catalog["fra1-a"], "theirs", "10.60.0.0/24")
    page = client_as(owner).post(urls["check"], form_data).content.decode()
    section = re.search(r'<div id="section-networks".*?</fieldset>', page, re.S).group(0)
    assert re.findall(r'<span class="user-text">([^<]+)</span> · ([\d./]+)', section) == [
        ("db", "10.30.0.0/24"),
        ("lan", "10.20.0.0/24"),
    ]
    assert "theirs" not in page and "far" not in section and "going" not in section


def test_launching_onto_a_network_lists_it_and_joins_once_running(
    client_as, owner, form_data, urls, access, catalog, knobs, django_capture_on_commit_callbacks
):
    from portal.compute.services import networks as svc

    with django_capture_on_commit_callbacks():
        made = svc.network_create(access=access, name="lan", zone=catalog["fra1-a"], cidr="10.20.0.0/24")
    drive(made)
    lan = Network.objects.get()
    client = client_as(owner)
    data = form_data | {"networks": [str(lan.pk)], "sections_zone": catalog["fra1-a"].pk}
    summary = _summary(client.post(urls["check"], data).content.decode())
    assert 'Networks</dt><dd><ul class="plain summary-networks">' in summary
    assert '<span class="user-text">lan</span> · 10.20.0.0/24' in summary
    with django_capture_on_commit_callbacks():
        answer = client.post(urls["launch"], data | {"count": 2})
    assert answer.status_code == 302
    assert list(NetworkPort.objects.values_list("status", flat=True)) == [PortStatus.WAITING] * 2
    drive(*Operation.objects.filter(instance__isnull=False))
    drive(*Operation.objects.filter(network=lan, action="network_attach"))
    ports = NetworkPort.objects.filter(network=lan)
    assert {p.status for p in ports} == {PortStatus.ATTACHED} and len({p.address for p in ports}) == 2


def test_another_zone_replaces_the_list_ticked(client_as, owner, form_data, urls, lan, catalog):
    data = form_data | {"networks": [str(lan.pk)], "sections_zone": catalog["fra1-a"].pk}
    page = client_as(owner).post(urls["check"], data | {"zone": catalog["iad1-a"].pk}).content.decode()
    assert _errors_of(page, "networks") == [] and "summary-networks" not in _summary(page)
    assert "The project has no private networks in iad1-a." in page
    # The launch itself still judges what it is sent.
    answer = client_as(owner).post(urls["launch"], data | {"zone": catalog["iad1-a"].pk})
    assert answer.status_code == 409 and not Instance.objects.exists()


def test_none_is_fine(client_as, owner, form_data, urls, lan):
    assert client_as(owner).post(urls["launch"], form_data).status_code == 302
    assert Instance.objects.count() == 1 and not NetworkPort.objects.exists()


def test_every_bad_choice_is_refused_at_once_and_nothing_is_made(
    client_as, owner, form_data, urls, lan, project, catalog
):
    theirs = _network(ProjectFactory(organization=project.organization), catalog["fra1-a"], "theirs")
    far = _network(project, catalog["iad1-a"], "far", "10.50.0.0/24")
    going = _network(project, catalog["fra1-a"], "going", "10.40.0.0/24", status="deleting")
    missing = "00000000-0000-0000-0000-000000000000"
    data = form_data | {
        "name": "Bad Name",
        "networks": [str(lan.pk), str(theirs.pk), str(far.pk), str(going.pk), "17", missing],
    }
    answer = client_as(owner).post(urls["launch"], data)
    assert answer.status_code == 400
    page = answer.content.decode()
    assert _errors_of(page, "networks") == [
        "Network far is in iad1-a, not fra1-a: a server joins networks of its own zone.",
        "Network going is deleting.",
        f"No private network “{theirs.pk}” in this project.",
        "“17” is not a network id.",
        f"No private network “{missing}” in this project.",
    ]
    assert _errors_of(page, "name")  # the other fields' problems with them
    assert "6 things to fix" in page
    # Another project's network is answered as one that does not exist: nothing of it shows.
    assert "theirs" not in page
    assert not Instance.objects.exists() and not NetworkPort.objects.exists()
    assert not Operation.objects.exists()


def test_a_zone_without_private_networks_says_so_and_takes_none(
    client_as, owner, form_data, urls, lan, catalog
):
    zone = catalog["fra1-a"]
    zone.backend_settings = {**zone.backend_settings, "absent": ["private_networks"]}
    zone.save()
    client = client_as(owner)
    page = client.post(urls["check"], form_data).content.decode()
    assert "Private networks are not available in fra1-a." in page and 'name="networks"' not in page
    refused = client.post(urls["launch"], form_data | {"networks": [str(lan.pk)]})
    assert refused.status_code == 409
    assert _errors_of(refused.content.decode(), "networks") == [
        "Private networks are not available in fra1-a."
    ]
    assert not Instance.objects.exists() and not NetworkPort.objects.exists()


def test_a_project_without_networks_in_the_zone_is_shown_where_to_create_one(
    client_as, owner, form_data, urls, catalog, project
):
    _network(project, catalog["iad1-a"], "far")
    page = client_as(owner).post(urls["check"], form_data).content.decode()
    assert "The project has no private networks in fra1-a." in page
    link = f"{urls['networks']}?zone={catalog['fra1-a'].pk}#new-network"
    assert f'<a href="{link}">Create one</a>' in page
    created = client_as(owner).get(link).content.decode()
    assert f'<option value="{catalog["fra1-a"].pk}" selected>' in created


def test_the_wizard_reads_networks_in_the_same_queries_however_many(
    client_as, owner, form_data, urls, project, catalog
):
    client = client_as(owner)

    def queries(n: int) -> tuple[int, int]:
        Network.objects.all().delete()
        ids = [str(_network(project, catalog["fra1-a"], f"n{i}", f"10.{i}.0.0/24").pk) for i in range(n)]
        # Ticked in the zone shown (judged, summed up), and the zone's list drawn (another zone
        # shown before), and the page.
        ticked = form_data | {"networks": ids, "sections_zone": catalog["fra1-a"].pk}
        with CaptureQueriesContext(connection) as check:
            assert "summary-networks" in client.post(urls["check"], ticked).content.decode()
        with CaptureQueriesContext(connection) as listed:
            assert (
                client.post(urls["check"], form_data | {"sections_zone": ""}).content.count(
                    b'name="networks"'
                )
                == n
            )
        with CaptureQueriesContext(connection) as page:
            assert client.get(urls["launch"]).status_code == 200
        return len(check), len(listed), len(page)

    queries(1)  # the first request of a client reads what later ones find cached
    assert queries(1) == queries(6)
