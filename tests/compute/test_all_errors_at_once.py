"""Keys, firewall rules and volumes say everything that is wrong in one answer, on the page and
through the API, instead of one problem per attempt; a private key is never shown back."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.compute.models import FirewallRule, FirewallRuleSet, SshKey, Volume
from portal.compute.services import ComputeRefused
from portal.compute.services import volumes as volume_services

PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
)


def _url(project, name: str, *args) -> str:
    return reverse(name, args=[project.organization.slug, project.slug, *args])


@pytest.fixture
def web(project, owner):
    return FirewallRuleSet.objects.create(project=project, name="web", created_by=owner)


@pytest.mark.parametrize(
    ("rule", "messages"),
    [
        (  # every field the service judges
            {"protocol": "tcp", "port_from": "70000", "source": "somewhere", "description": "d" * 200},
            [
                "Ports are numbers from 1 to 65535.",
                "is not an IPv4 or IPv6 address",
                "at most 120 characters",
            ],
        ),
        (  # a field the form refuses, and the service's on the others
            {"protocol": "tcp", "port_from": "eighty", "source": "somewhere", "description": "d" * 200},
            ["Enter a whole number.", "is not an IPv4 or IPv6 address", "at most 120 characters"],
        ),
        (
            {"protocol": "tcp", "port_from": "22", "port_to": "99999", "source": "nowhere"},
            ["Ports are numbers from 1 to 65535.", "is not an IPv4 or IPv6 address"],
        ),
    ],
)
def test_a_bad_rule_gets_every_message_at_once(project, member, client_as, web, rule, messages):
    response = client_as(member).post(_url(project, "compute:firewall_detail", web.pk), rule)
    assert response.status_code == 400
    page = response.content.decode()
    for message in messages:
        assert message in page, message
    assert not FirewallRule.objects.exists()


def test_the_rule_inputs_carry_the_port_bounds(project, member, client_as, web):
    page = client_as(member).get(_url(project, "compute:firewall_detail", web.pk)).content.decode()
    assert 'name="port_from" min="1" max="65535"' in page


def test_a_bad_key_and_a_bad_name_are_both_reported(project, owner, client_as):
    response = client_as(owner).post(
        _url(project, "compute:ssh_keys"), {"name": "n" * 81, "public_key": "ssh-ed25519 not-base64!"}
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "Ensure this value has at most 80 characters" in page and "not valid base64" in page


def test_a_bad_key_and_a_name_with_control_characters_are_both_reported(access, project):
    from portal.compute.services import keys as key_services

    with pytest.raises(ComputeRefused) as refused:
        key_services.ssh_key_add(access=access, name="bad\x07name", public_key="ssh-ed25519 not-base64!")
    assert sorted(p.field for p in refused.value.problems) == ["name", "public_key"]


def test_a_private_key_on_the_keys_page_is_refused_and_not_shown_back(project, owner, client_as):
    response = client_as(owner).post(_url(project, "compute:ssh_keys"), {"public_key": PRIVATE_KEY})
    page = response.content.decode()
    assert response.status_code == 400
    assert "That is a private key — paste the .pub file&#x27;s contents; never share the private key." in page
    assert "b3BlbnNzaC1rZXktdjEA" not in page and "BEGIN OPENSSH" not in page
    assert not SshKey.objects.exists()


def test_the_volume_service_names_every_bad_field(access, catalog):
    with pytest.raises(ComputeRefused) as refused:
        volume_services.volume_create(
            access=access, name="Bad Name!", zone=catalog["fra1-a"], size_gib=10**30
        )
    assert [p.field for p in refused.value.problems] == ["name", "size_gib"]
    assert not Volume.objects.exists()
