"""Private networks in Chromium: a customer creates a network with the form (a bad range first:
every problem at once), puts two servers on it from their pages, and each server's page shows its
address inside the range; the network's page lists both. Then a third server is launched onto it
from the launch wizard (the network ticked, named in the summary) and joins it once it runs. Shots
at 1366 and 390 px into docs/screenshots/ (100-…103-)."""

from __future__ import annotations

import ipaddress
import re

import pytest

from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.models import Instance, Network, NetworkPort, Operation, SimulatedKnobs
from portal.tenancy.access import project_access
from tests.browser.pages import WIDTHS, fitting_shots, look, owner_page
from tests.browser.wizard import choose, launch_from_wizard
from tests.steps import drive

pytestmark = pytest.mark.browser

__all__ = ["owner_page"]  # the fixture


def _both_widths(page, shoot, name: str) -> None:
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        fitting_shots(shoot, "-mobile" if label == "phone" else "")(page, name)
    page.set_viewport_size({"width": 1366, "height": 900})


def test_two_servers_on_a_private_network(owner_page, monkeypatch, shoot, tmp_path):
    page, project = owner_page, owner_page.project
    monkeypatch.setattr("portal.compute.services.common.operations_enqueue", lambda steps: None)
    SimulatedKnobs.objects.create(boot_seconds=0, action_seconds=0, transient_error_rate=0)
    access = project_access(page.owner, project.organization.slug, project.slug)
    fra = Zone.objects.get(code="fra1-a")
    batch = services.instance_launch(
        access=access,
        req=services.LaunchRequest(
            name="app",
            count=2,
            zone=fra,
            flavor=Flavor.objects.get(code="s-1vcpu-2gb"),
            image=Image.objects.get(name="Debian 13"),
            root_disk_gib=50,
        ),
    )
    drive(*Operation.objects.filter(instance__batch=batch))
    servers = list(batch.instances.order_by("name"))

    page.goto(page.base + f"/o/{project.organization.slug}/p/{project.slug}/networks/")
    page.get_by_label("Name").fill("backend")
    page.get_by_label("Address range (CIDR)").fill("8.8.8.0/33")
    page.get_by_label("Zone").select_option(label=f"fra1-a · {fra.region.name}, {fra.region.country}")
    page.get_by_role("button", name="Create network").click()
    page.get_by_text("/33 is no IPv4 prefix").wait_for()
    page.get_by_label("Address range (CIDR)").fill("10.40.0.0/24")
    page.get_by_role("button", name="Create network").click()
    page.get_by_text("Creating backend (10.40.0.0/24) in fra1-a").wait_for()
    drive(Operation.objects.get(network__name="backend"))
    page.locator("tr", has_text="backend").locator(".status-vol-available").wait_for()  # polled, no reload
    _both_widths(page, shoot, "100-private-networks")
    look(page, tmp_path, "networks")

    for server in servers:
        page.goto(page.base + server.get_absolute_url())
        page.get_by_label("Join a network").select_option(label="backend (10.40.0.0/24)")
        page.locator("#join-network").get_by_role("button", name="Attach").click()
        page.get_by_text(f"{server.name} is joining backend").wait_for()
        drive(*Operation.objects.filter(network__name="backend", action="network_attach", state="pending"))

    addresses = dict(NetworkPort.objects.values_list("instance__name", "address"))
    assert len(set(addresses.values())) == 2
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("10.40.0.0/24") for a in addresses.values())
    for server in servers:
        page.goto(page.base + server.get_absolute_url())
        card = page.locator("#networks")
        card.get_by_text(addresses[server.name]).wait_for()
        assert "On the network" in card.inner_text()
    _both_widths(page, shoot, "102-server-on-private-network")

    page.goto(page.base + Network.objects.get().get_absolute_url())
    for server in servers:
        row = page.locator("tr", has_text=server.name)
        assert addresses[server.name] in row.inner_text()
    page.get_by_text("detach them first").wait_for()
    _both_widths(page, shoot, "101-private-network")
    look(page, tmp_path, "network")

    # --- Launched onto the network from the wizard ---------------------------------------------
    page.goto(page.base + f"/o/{project.organization.slug}/p/{project.slug}/servers/new/")
    page.fill("input[name=name]", "db")
    choose(page, page.locator(f"input[name=zone][value='{fra.pk}']"), "Debian 13", "Starter 2")
    section = page.locator("#section-networks")
    section.get_by_label(re.compile("backend")).check()
    summary = page.locator("#launch-summary")
    summary.locator(".summary-networks").get_by_text("10.40.0.0/24").wait_for()
    assert "Networks" in summary.inner_text()
    page.locator("#s-access").scroll_into_view_if_needed()
    _both_widths(page, shoot, "103-launch-on-network")
    launch_from_wizard(page, "Launch server")
    server = Instance.objects.get(name="db")
    drive(*Operation.objects.filter(instance=server))
    drive(*Operation.objects.filter(network__name="backend", action="network_attach", state="pending"))
    address = NetworkPort.objects.get(instance=server).address
    assert ipaddress.ip_address(address) in ipaddress.ip_network("10.40.0.0/24")
    assert address not in addresses.values()
    page.goto(page.base + server.get_absolute_url())
    page.locator("#networks").get_by_text(address).wait_for()
    assert not page.csp_violations
