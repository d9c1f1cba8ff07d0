"""PUT /instances/{id}/firewall: attach, switch or detach a server's firewall through the API, with
the same rules as the server page; the applied state in the instance schema."""

from __future__ import annotations

import pytest

from portal.audit.models import AuditAction, AuditEvent
from portal.compute.models import Action, FirewallRule, FirewallRuleSet, Operation
from tests.api.conftest import assert_problem
from tests.compute.test_firewall_live import SSH, running  # noqa: F401
from tests.factories import ProjectFactory
from tests.steps import drive


@pytest.fixture
def ssh_only(project, owner):
    rule_set = FirewallRuleSet.objects.create(project=project, name="ssh-only", created_by=owner)
    FirewallRule.objects.create(rule_set=rule_set, **SSH)
    return rule_set


def test_attach_then_the_instance_shows_it_applied(owner_api, running, ssh_only):  # noqa: F811
    server = running()
    path = f"instances/{server.pk}/firewall"
    answer = owner_api.put(path, {"firewall": ssh_only.pk})
    assert answer.status_code == 202
    body = answer.json()
    assert body["instance"]["firewall"] == ssh_only.pk and body["instance"]["firewall_state"] == "applying"
    drive(Operation.objects.get(pk=body["operation"]["id"]))
    shown = owner_api.get(f"instances/{server.pk}").json()
    assert shown["firewall_state"] == "applied" and shown["firewall_applied_at"]
    again = owner_api.put(path, {"firewall": ssh_only.pk})
    assert again.status_code == 200 and again.json()["operation"] is None
    assert Operation.objects.filter(action=Action.FIREWALL_APPLY).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.INSTANCE_FIREWALL).count() == 1
    detached = owner_api.put(path, {"firewall": None})
    assert detached.status_code == 202 and detached.json()["instance"]["firewall"] is None


@pytest.mark.parametrize("which", ["other project", "missing"])
def test_a_firewall_not_of_the_project_is_a_422_and_nothing_changes(owner_api, org, running, which):  # noqa: F811
    server = running()
    firewall = 999999
    if which == "other project":
        firewall = FirewallRuleSet.objects.create(
            project=ProjectFactory(organization=org, slug="p2"), name="x"
        ).pk
    body = assert_problem(owner_api.put(f"instances/{server.pk}/firewall", {"firewall": firewall}), 422)
    assert body["errors"] == [{"field": "firewall", "message": "Choose one of the project's firewalls."}]
    server.refresh_from_db()
    assert server.firewall is None and not Operation.objects.filter(action=Action.FIREWALL_APPLY).exists()


def test_a_read_only_token_may_not(owner, org, token_for, running, ssh_only):  # noqa: F811
    server = running()
    _, api = token_for(owner, org, scope="read")
    assert_problem(api.put(f"instances/{server.pk}/firewall", {"firewall": ssh_only.pk}), 403)
    server.refresh_from_db()
    assert server.firewall is None


def test_a_zone_without_firewall_rules_is_a_409(owner_api, catalog, running, ssh_only):  # noqa: F811
    server = running()
    catalog["fra1-a"].backend_settings = {"absent": ["firewall"]}
    catalog["fra1-a"].save()
    body = assert_problem(owner_api.put(f"instances/{server.pk}/firewall", {"firewall": ssh_only.pk}), 409)
    assert body["detail"] == "Firewall rules are not available in fra1-a."
