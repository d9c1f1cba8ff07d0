"""One 422 names every bad field of a volume, a firewall rule and a budget, not one per attempt."""

from __future__ import annotations

from portal.budgets.models import Budget
from portal.compute.models import FirewallRule, FirewallRuleSet, Volume
from tests.api.conftest import assert_problem


def test_the_api_lists_every_bad_field_of_a_volume_and_a_rule(owner_api, project, owner):
    body = assert_problem(
        owner_api.post(
            "volumes", {"project": project.pk, "name": "Bad Name!", "zone": "fra1-a", "size_gib": 0}
        ),
        422,
    )
    assert sorted(e["field"] for e in body["errors"]) == ["name", "size_gib"]
    rule_set = FirewallRuleSet.objects.create(project=project, name="api", created_by=owner)
    body = assert_problem(
        owner_api.post(
            f"firewalls/{rule_set.pk}/rules",
            {"protocol": "tcp", "port_from": 0, "source": "nowhere", "description": "d" * 121},
        ),
        422,
    )
    assert sorted(e["field"] for e in body["errors"]) == ["description", "port_from", "source"]
    assert not Volume.objects.exists() and not FirewallRule.objects.exists()


def test_a_budget_out_of_bounds_is_a_422(owner_api, project):
    for amount in ("1e30", "0", "-1", "NaN", "Infinity", "10000000000"):
        body = assert_problem(owner_api.put(f"projects/{project.pk}/budget", {"amount": amount}), 422)
        assert [e["field"] for e in body["errors"]] == ["amount"], amount
    assert not Budget.objects.exists()
