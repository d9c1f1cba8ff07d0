"""Private network pages: create (every problem at once), the network's page with its servers and
addresses, attach and detach from the server's page, delete refused while servers are on it,
roles (GET→405, outsider→404, viewer→403), a zone without networks says so."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.compute.models import Network, NetworkPort, Operation, PortStatus
from tests.steps import drive


def _url(project, name="compute:networks", *args) -> str:
    return reverse(name, args=[project.organization.slug, project.slug, *args])


@pytest.fixture
def network(project, catalog, owner):
    return Network.objects.create(
        project=project,
        name="lan",
        zone=catalog["fra1-a"],
        cidr="10.20.0.0/24",
        status="available",
        backend_id="x",
    )


def test_create_shows_every_problem_at_once(project, member, client_as, catalog, knobs):
    client = client_as(member)
    response = client.post(_url(project), {"name": "Bad!", "cidr": "8.8.8.0/33", "zone": ""})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Use lower-case letters" in page and "/33 is no IPv4 prefix" in page and "Choose a zone." in page
    response = client.post(_url(project), {"name": "x", "cidr": "8.8.8.0/30", "zone": catalog["fra1-a"].pk})
    page = response.content.decode()
    assert (
        response.status_code == 400 and "is not a private range" in page and "too small for servers" in page
    )
    assert not Network.objects.exists()
    response = client.post(
        _url(project), {"name": "lan", "cidr": "10.20.0.0/24", "zone": catalog["fra1-a"].pk}
    )
    assert response.status_code == 302
    assert "Creating lan (10.20.0.0/24) in fra1-a" in client.get(_url(project)).content.decode()
    assert "Networks are free" in client.get(_url(project)).content.decode()


def test_roles_and_methods(project, network, viewer, outsider, client_as, launch):
    batch = launch(name="web")
    drive(Operation.objects.get(instance__batch=batch))
    server = batch.instances.get()
    attach = _url(project, "compute:network_attach", network.pk)
    assert client_as(viewer).get(attach).status_code == 405
    assert client_as(outsider).post(attach, {"instance": server.pk}).status_code == 404
    assert client_as(viewer).post(attach, {"instance": server.pk}).status_code == 403
    assert client_as(viewer).post(_url(project, "compute:network_delete", network.pk)).status_code == 403
    assert not NetworkPort.objects.exists()


def test_join_from_the_server_page_and_see_the_address(project, owner, client_as, launch, catalog, knobs):
    client = client_as(owner)
    client.post(_url(project), {"name": "lan", "cidr": "10.20.0.0/24", "zone": catalog["fra1-a"].pk})
    drive(Operation.objects.get(network__name="lan"))
    network = Network.objects.get()
    batch = launch(name="web")
    drive(Operation.objects.get(instance__batch=batch))
    server = batch.instances.get()
    page = client.get(server.get_absolute_url()).content.decode()
    assert "Join a network" in page and "lan (10.20.0.0/24)" in page
    response = client.post(
        _url(project, "compute:network_join"),
        {"network": network.pk, "instance": server.pk, "next": server.get_absolute_url()},
    )
    assert response.status_code == 302 and response.url == server.get_absolute_url()
    assert (
        client.post(
            _url(project, "compute:network_join"), {"network": network.pk, "instance": server.pk}
        ).status_code
        == 302
    )
    drive(*Operation.objects.filter(network=network, action="network_attach"))
    port = NetworkPort.objects.get()
    assert port.status == PortStatus.ATTACHED and port.address == "10.20.0.2"
    assert "10.20.0.2" in client.get(server.get_absolute_url()).content.decode()
    detail = client.get(network.get_absolute_url()).content.decode()
    assert "web" in detail and "10.20.0.2" in detail and "detach them first" in detail
    client.post(_url(project, "compute:network_delete", network.pk))
    network.refresh_from_db()
    assert network.status == "available"  # refused: a server is on it
    client.post(_url(project, "compute:network_detach", network.pk), {"instance": server.pk})
    drive(Operation.objects.get(network=network, action="network_detach"))
    assert NetworkPort.objects.get().status == PortStatus.DETACHED


def test_a_zone_without_networks_says_so_on_the_server_page(project, owner, client_as, launch, catalog):
    zone = catalog["fra1-a"]
    zone.backend_settings = {"absent": ["private_networks"]}
    zone.save()
    batch = launch(name="web")
    drive(Operation.objects.get(instance__batch=batch))
    page = client_as(owner).get(batch.instances.get().get_absolute_url()).content.decode()
    assert "Private networks are not available in fra1-a." in page
    assert (
        "Private networks are not available in fra1-a."
        in client_as(owner).get(_url(project)).content.decode()
    )
