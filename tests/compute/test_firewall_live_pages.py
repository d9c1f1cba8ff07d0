# ruff: noqa: F811  (the `running` fixture is imported)
"""The pages of live firewalls: the server page's firewall card (state and the form that attaches,
switches or detaches), the firewall page's servers with their state, the wording where a zone
applies no rules, and the launch wizard's default (SSH from the customer's address) and its
confirmation for "all inbound traffic allowed"."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.models import Flavor, Image
from portal.compute.models import Action, FirewallRule, FirewallRuleSet, Instance, Operation
from tests.compute.test_firewall_live import SSH, running  # noqa: F401
from tests.factories import ProjectFactory
from tests.steps import drive


@pytest.fixture
def ssh_only(project, owner):
    rule_set = FirewallRuleSet.objects.create(project=project, name="ssh-only", created_by=owner)
    FirewallRule.objects.create(rule_set=rule_set, **SSH)
    return rule_set


def _firewall_url(server):
    p = server.project
    return reverse("compute:instance_firewall", args=[p.organization.slug, p.slug, server.pk])


def _page(client, server) -> str:
    return client.get(server.get_absolute_url()).content.decode()


def test_attach_from_the_server_page_then_it_shows_applied(client_as, owner, running, ssh_only):
    server = running()
    client = client_as(owner)
    page = _page(client, server)
    assert "Change the firewall" in page and "None</strong>: all inbound traffic is allowed" in page
    response = client.post(_firewall_url(server), {"firewall": ssh_only.pk})
    assert response.status_code == 302
    assert "Applying…" in _page(client, server)
    drive(Operation.objects.get(instance=server, action=Action.FIREWALL_APPLY))
    server.refresh_from_db()
    page = _page(client, server)
    assert f"Rules applied {server.firewall_applied_at:%H:%M}" in page and "ssh-only" in page
    firewall_page = client.get(
        reverse(
            "compute:firewall_detail",
            args=[server.project.organization.slug, server.project.slug, ssh_only.pk],
        )
    ).content.decode()
    assert "Applied" in firewall_page and server.name in firewall_page
    assert "launched from now on" not in firewall_page
    assert f"It is used by {server.name}." in firewall_page


def test_a_failure_shows_its_reason(client_as, owner, running, ssh_only):
    server = running()
    Instance.objects.filter(pk=server.pk).update(
        firewall_state="failed", firewall_message="The cloud said no."
    )
    assert "Failed: The cloud said no." in _page(client_as(owner), server)


@pytest.mark.parametrize("value", ["999999", "abc", "other"])
def test_a_firewall_not_of_this_project_is_a_400_and_nothing_changes(
    client_as,
    owner,
    org,
    running,
    value,
):
    server = running()
    if value == "other":
        value = FirewallRuleSet.objects.create(
            project=ProjectFactory(organization=org, slug="p2"), name="x"
        ).pk
    response = client_as(owner).post(_firewall_url(server), {"firewall": value})
    assert response.status_code == 400
    assert "Choose one of the project&#x27;s firewalls." in response.content.decode()
    server.refresh_from_db()
    assert server.firewall is None and not Operation.objects.filter(action=Action.FIREWALL_APPLY).exists()


def test_viewers_and_outsiders_may_not(client_as, viewer, outsider, running, ssh_only):
    server = running()
    assert client_as(viewer).post(_firewall_url(server), {"firewall": ssh_only.pk}).status_code == 403
    assert client_as(outsider).post(_firewall_url(server), {"firewall": ssh_only.pk}).status_code == 404
    assert "Change the firewall" not in _page(client_as(viewer), server)
    assert not Operation.objects.filter(action=Action.FIREWALL_APPLY).exists()


def test_a_zone_without_firewall_rules_says_so_in_plain_words(
    client_as,
    owner,
    catalog,
    running,
    ssh_only,
):
    server = running()
    Instance.objects.filter(pk=server.pk).update(firewall=ssh_only)
    catalog["fra1-a"].backend_settings = {"absent": ["firewall"]}
    catalog["fra1-a"].save()
    client = client_as(owner)
    page = _page(client, server)
    assert "Firewall rules are not available in fra1-a." in page and "Change the firewall" not in page
    firewall_page = client.get(
        reverse(
            "compute:firewall_detail",
            args=[server.project.organization.slug, server.project.slug, ssh_only.pk],
        )
    ).content.decode()
    assert (
        "Firewall rules are not available in fra1-a. This server accepts all inbound traffic."
        in firewall_page
    )
    response = client.post(_firewall_url(server), {"firewall": ""})
    assert response.status_code == 409


@pytest.fixture
def launch_url(project):
    return reverse("compute:launch", args=[project.organization.slug, project.slug])


def test_the_wizard_defaults_to_ssh_from_my_address(client_as, owner, launch_url):
    page = client_as(owner).get(launch_url, REMOTE_ADDR="203.0.113.9").content.decode()
    assert '<option value="preset:ssh-my-ip" selected>Preset: SSH from my IP only (203.0.113.9/32)' in page
    page = client_as(owner).get(launch_url, REMOTE_ADDR="2001:db8::7").content.decode()
    assert "(2001:db8::7/128)" in page and 'value="preset:ssh-my-ip" selected' in page


def test_all_inbound_needs_its_confirmation_with_every_other_error_at_once(
    client_as, owner, catalog, launch_url
):
    data = {
        "name": "Bad Name!",
        "count": 1,
        "zone": catalog["fra1-a"].pk,
        "image": Image.objects.get(name="Debian 13").pk,
        "flavor": Flavor.objects.get(code="s-1vcpu-2gb").pk,
        "firewall": "",
    }
    response = client_as(owner).post(launch_url, data)
    page = response.content.decode()
    assert response.status_code == 400
    assert "tick the box to confirm, or choose a firewall" in page and "Use lower-case letters" in page
    assert not Instance.objects.exists()
    response = client_as(owner).post(launch_url, data | {"name": "web", "allow_all_inbound": "on"})
    assert response.status_code == 302 and Instance.objects.get().firewall is None
