"""Firewall rule sets: create (empty or from a preset), rule validation, delete rules and sets, roles."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.compute.models import FirewallRule, FirewallRuleSet, Protocol
from portal.compute.services import ComputeRefused
from portal.compute.services import firewalls as firewall_services
from portal.tenancy.access import project_access
from tests.factories import InstanceFactory, ProjectFactory


def _url(project, name: str = "compute:firewalls", *args) -> str:
    return reverse(name, args=[project.organization.slug, project.slug, *args])


@pytest.fixture
def web(project, owner):
    return FirewallRuleSet.objects.create(project=project, name="web", created_by=owner)


def _rule(protocol="tcp", port_from="22", port_to="", source="0.0.0.0/0", description="") -> dict:
    return {
        "protocol": protocol,
        "port_from": port_from,
        "port_to": port_to,
        "source": source,
        "description": description,
    }


# --- Creating ---------------------------------------------------------------------------------


def test_an_empty_firewall_is_created_and_audited(project, member, client_as):
    response = client_as(member).post(_url(project), {"name": "db-servers", "preset": ""})
    rule_set = FirewallRuleSet.objects.get(project=project)
    assert response.status_code == 302
    assert response["Location"] == _url(project, "compute:firewall_detail", rule_set.pk)
    assert rule_set.name == "db-servers" and not rule_set.rules.exists()
    event = AuditEvent.objects.get(action=AuditAction.FIREWALL_CREATED)
    assert event.actor == member and event.target_repr == "db-servers"


def test_the_page_offers_both_presets_with_my_address(project, member, client_as):
    page = client_as(member).get(_url(project), REMOTE_ADDR="203.0.113.7").content.decode()
    assert "SSH from my IP only (203.0.113.7/32)" in page
    assert "HTTP/HTTPS from anywhere" in page


def test_ssh_from_my_ip_preset(project, member, client_as):
    response = client_as(member).post(
        _url(project), {"name": "", "preset": "ssh-my-ip"}, REMOTE_ADDR="203.0.113.7"
    )
    assert response.status_code == 302
    rule_set = FirewallRuleSet.objects.get(project=project)
    assert rule_set.name == "ssh-from-203.0.113.7"
    rules = [(r.protocol, r.port_from, r.port_to, r.source) for r in rule_set.rules.all()]
    assert rules == [(Protocol.TCP, 22, 22, "203.0.113.7/32")]


def test_web_preset_with_a_name(project, member, client_as):
    client_as(member).post(_url(project), {"name": "shop", "preset": "web"})
    rule_set = FirewallRuleSet.objects.get(project=project, name="shop")
    assert sorted(r.port_from for r in rule_set.rules.all()) == [22, 80, 443]
    assert {r.source for r in rule_set.rules.all()} == {"0.0.0.0/0"}


def test_a_second_firewall_with_the_same_name_is_refused(project, member, client_as):
    client = client_as(member)
    client.post(_url(project), {"name": "", "preset": "web"})
    again = client.post(_url(project), {"name": "", "preset": "web"})
    assert again.status_code == 409
    assert "already has a firewall named “web-and-ssh”" in again.content.decode()
    assert FirewallRuleSet.objects.count() == 1 and FirewallRule.objects.count() == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "preset": ""}, "Give the firewall a name."),
        ({"name": "x", "preset": "allow-everything"}, "Select a valid choice"),
        ({"name": "x" * 81, "preset": ""}, "at most 80 characters"),
    ],
)
def test_bad_firewall_input_is_a_400(project, member, client_as, data, message):
    response = client_as(member).post(_url(project), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not FirewallRuleSet.objects.exists()


# --- Rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "stored"),
    [
        (_rule("tcp", "22", "", "203.0.113.7"), ("tcp", 22, 22, "203.0.113.7/32")),
        (_rule("tcp", "8000", "8080", "10.1.2.3/8"), ("tcp", 8000, 8080, "10.0.0.0/8")),
        (_rule("udp", "51820", "51820", " 0.0.0.0/0 "), ("udp", 51820, 51820, "0.0.0.0/0")),
        (_rule("icmp", "", "", "::/0"), ("icmp", None, None, "::/0")),
        (_rule("tcp", "443", "", "2001:DB8::1"), ("tcp", 443, 443, "2001:db8::1/128")),
        (_rule("tcp", "1", "65535", "2001:db8:1::/48"), ("tcp", 1, 65535, "2001:db8:1::/48")),
    ],
)
def test_rules_are_stored_normalised(project, member, client_as, web, rule, stored):
    response = client_as(member).post(_url(project, "compute:firewall_detail", web.pk), rule)
    assert response.status_code == 302
    saved = web.rules.get()
    assert (saved.protocol, saved.port_from, saved.port_to, saved.source) == stored
    assert AuditEvent.objects.filter(action=AuditAction.FIREWALL_UPDATED, target_repr="web").count() == 1


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (_rule(source="10.0.0.300/24"), "is not an IPv4 or IPv6 address or network"),
        (_rule(source="anywhere"), "is not an IPv4 or IPv6 address or network"),
        (_rule(source="10.0.0.0/33"), "is not an IPv4 or IPv6 address or network"),
        (_rule(source=""), "Enter where traffic may come from"),
        (_rule(port_from="0"), "Ports are numbers from 1 to 65535."),
        (_rule(port_from="22", port_to="65536"), "Ports are numbers from 1 to 65535."),
        (_rule(port_from="-5"), "Ports are numbers from 1 to 65535."),
        (_rule(port_from="8080", port_to="8000"), "runs backwards"),
        (_rule(port_from=""), "TCP rules need a port"),
        (_rule("udp", port_from=""), "UDP rules need a port"),
        (_rule("icmp", port_from="22"), "ICMP has no ports"),
        (_rule(port_from="ssh"), "Enter a whole number"),
        (_rule("gre"), "Select a valid choice"),
        (_rule(description="x" * 121), "at most 120 characters"),
    ],
)
def test_bad_rules_re_render_with_the_reason(project, member, client_as, web, rule, message):
    response = client_as(member).post(_url(project, "compute:firewall_detail", web.pk), rule)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not FirewallRule.objects.exists()


@pytest.mark.parametrize(
    ("first", "again", "named"),
    [
        (_rule(source="203.0.113.4/32"), _rule(source="203.0.113.4"), "TCP 22 from 203.0.113.4/32"),
        (_rule(source="0.0.0.0/0"), _rule(source="0.0.0.0/00"), "TCP 22 from 0.0.0.0/0"),
        (_rule(port_to="22"), _rule(port_to=""), "TCP 22 from 0.0.0.0/0"),
        (
            _rule("udp", "60000", "61000"),
            _rule("udp", "60000", "61000", " 0.0.0.0/0.0.0.0 "),
            "UDP 60000-61000",
        ),
        (_rule("icmp", "", "", "::/0"), _rule("icmp", "", "", "::/000"), "ICMP all from ::/0"),
        (_rule(source="2001:db8::/32"), _rule(source="2001:DB8:0:0::/32"), "TCP 22 from 2001:db8::/32"),
    ],
)
def test_a_rule_the_set_already_has_is_refused_and_changes_nothing(
    project, member, client_as, web, first, again, named
):
    client = client_as(member)
    url = _url(project, "compute:firewall_detail", web.pk)
    added = client.post(url, first | {"description": "SSH from the office"}, follow=True)
    assert added.redirect_chain and "Rule added" in added.content.decode()
    response = client.post(url, again | {"description": "a second copy"})
    assert response.status_code == 409
    page = response.content.decode()
    assert f"This rule set already has that rule ({named}" in page
    assert "Rule added" not in page
    assert 'value="a second copy"' in page  # the form keeps what was typed
    assert list(web.rules.values_list("description", flat=True)) == ["SSH from the office"]
    assert AuditEvent.objects.filter(action=AuditAction.FIREWALL_UPDATED).count() == 1


def test_the_same_ports_from_another_source_or_protocol_are_other_rules(project, member, client_as, web):
    client = client_as(member)
    url = _url(project, "compute:firewall_detail", web.pk)
    for rule in (_rule(), _rule("udp"), _rule(source="203.0.113.4"), _rule(port_to="23"), _rule("icmp", "")):
        assert client.post(url, rule).status_code == 302, rule
    assert web.rules.count() == 5


@pytest.mark.parametrize(
    "fields",
    [
        {"protocol": "tcp", "port_from": 22, "port_to": 22, "source": "0.0.0.0/0"},
        {"protocol": "icmp", "port_from": None, "port_to": None, "source": "0.0.0.0/0"},
    ],
)
def test_the_database_holds_one_copy_of_a_rule_whoever_writes(web, fields):
    from django.db import IntegrityError, transaction

    FirewallRule.objects.create(rule_set=web, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        FirewallRule.objects.create(rule_set=web, description="again", **fields)
    # Another rule set may hold the same rule.
    FirewallRule.objects.create(
        rule_set=FirewallRuleSet.objects.create(project=web.project, name="b"), **fields
    )


def test_rule_delete_then_again_is_404(project, member, client_as, web):
    rule = FirewallRule.objects.create(rule_set=web, port_from=22, port_to=22, source="0.0.0.0/0")
    client = client_as(member)
    url = _url(project, "compute:firewall_rule_delete", web.pk, rule.pk)
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 302
    assert not web.rules.exists()
    event = AuditEvent.objects.get(action=AuditAction.FIREWALL_UPDATED)
    assert event.changes == {"rule removed": ["TCP 22 from 0.0.0.0/0", None]}
    assert client.post(url).status_code == 404


def test_a_rule_is_only_found_under_its_own_firewall(project, member, client_as, web):
    other = FirewallRuleSet.objects.create(project=project, name="other")
    rule = FirewallRule.objects.create(rule_set=other, port_from=22, port_to=22, source="0.0.0.0/0")
    response = client_as(member).post(_url(project, "compute:firewall_rule_delete", web.pk, rule.pk))
    assert response.status_code == 404
    assert FirewallRule.objects.filter(pk=rule.pk).exists()


def test_service_refuses_with_the_field_named(project, member, web):
    access = project_access(member, project.organization.slug, project.slug)
    with pytest.raises(ComputeRefused) as refused:
        firewall_services.firewall_rule_add(
            access=access, rule_set=web, protocol="tcp", port_from=22, port_to=None, source="300.1.1.1"
        )
    assert refused.value.field == "source" and refused.value.status == 400


# --- Deleting ---------------------------------------------------------------------------------


def test_delete_is_refused_while_a_server_uses_it(project, member, client_as, web):
    InstanceFactory(project=project, name="shop-1", firewall=web, status="running")
    InstanceFactory(project=project, name="shop-2", firewall=web, status="stopped")
    InstanceFactory(project=project, name="old", firewall=web, status="terminated")
    response = client_as(member).post(_url(project, "compute:firewall_delete", web.pk))
    assert response.status_code == 409
    page = response.content.decode()
    assert "“web” is still used by shop-1, shop-2. It can be deleted once no server uses it" in page
    assert FirewallRuleSet.objects.filter(pk=web.pk).exists()
    assert not AuditEvent.objects.filter(action=AuditAction.FIREWALL_DELETED).exists()


def test_delete_once_only_terminated_servers_used_it(project, member, client_as, web):
    old = InstanceFactory(project=project, firewall=web, status="terminated")
    FirewallRule.objects.create(rule_set=web, port_from=22, port_to=22, source="0.0.0.0/0")
    client = client_as(member)
    url = _url(project, "compute:firewall_delete", web.pk)
    assert client.get(url).status_code == 405
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == _url(project)
    assert not FirewallRuleSet.objects.exists() and not FirewallRule.objects.exists()
    old.refresh_from_db()
    assert old.firewall is None
    assert AuditEvent.objects.filter(action=AuditAction.FIREWALL_DELETED, target_repr="web").count() == 1
    assert client.post(url).status_code == 404


# --- Roles ------------------------------------------------------------------------------------


def test_viewer_reads_rules_without_forms_and_may_not_change_them(project, viewer, client_as, web):
    rule = FirewallRule.objects.create(rule_set=web, port_from=22, port_to=22, source="198.51.100.0/24")
    client = client_as(viewer)
    for url in (_url(project), _url(project, "compute:firewall_detail", web.pk)):
        page = client.get(url)
        assert page.status_code == 200
        assert '<form method="post"' not in page.content.decode().split('id="main"')[1]
    assert "198.51.100.0/24" in client.get(_url(project, "compute:firewall_detail", web.pk)).content.decode()
    for url, data in (
        (_url(project), {"name": "mine", "preset": ""}),
        (_url(project, "compute:firewall_detail", web.pk), _rule()),
        (_url(project, "compute:firewall_rule_delete", web.pk, rule.pk), {}),
        (_url(project, "compute:firewall_delete", web.pk), {}),
    ):
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert b"Viewer" in response.content
    assert FirewallRuleSet.objects.count() == 1 and web.rules.count() == 1


def test_another_projects_firewall_is_404(org, project, member, outsider, client_as, web):
    other = ProjectFactory(organization=org, slug="other")
    assert client_as(member).get(_url(other, "compute:firewall_detail", web.pk)).status_code == 404
    assert client_as(member).post(_url(other, "compute:firewall_delete", web.pk)).status_code == 404
    assert client_as(outsider).get(_url(project, "compute:firewall_detail", web.pk)).status_code == 404
    assert FirewallRuleSet.objects.filter(pk=web.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_first_of_rules_stored_twice_before():
    """Before the constraints a set could hold a rule twice (presets, old writes): the migration
    keeps the first copy of each and nothing else."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = ("compute", "0004_simulated_key_not_unique"), ("compute", "0005_firewall_rule_unique")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    apps = executor.loader.project_state([before]).apps
    project = ProjectFactory()
    rule_set = apps.get_model("compute", "FirewallRuleSet").objects.create(project_id=project.pk, name="old")
    Rule = apps.get_model("compute", "FirewallRule")
    ssh = dict(rule_set=rule_set, protocol="tcp", port_from=22, port_to=22, source="0.0.0.0/0")
    ping = dict(rule_set=rule_set, protocol="icmp", port_from=None, port_to=None, source="::/0")
    kept = [Rule.objects.create(**ssh, description="first").pk, Rule.objects.create(**ping).pk]
    Rule.objects.create(**ssh, description="second")
    Rule.objects.create(**ping)
    kept.append(Rule.objects.create(**ssh | {"port_to": 23}).pk)

    executor = MigrationExecutor(connection)
    executor.migrate([after])
    assert sorted(FirewallRule.objects.values_list("pk", flat=True)) == sorted(kept)
    assert FirewallRule.objects.get(port_to=22).description == "first"
    # Back to the latest schema: later migrations (console sessions…) were undone on the way down.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
