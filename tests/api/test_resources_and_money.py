"""SSH keys, firewalls, volumes, usage and budgets: the same services and reasons as the web pages."""

from __future__ import annotations

from decimal import Decimal

from portal.audit.models import AuditEvent
from portal.budgets.models import Budget
from portal.catalog.models import Jurisdiction
from portal.compute.models import FirewallRuleSet, SshKey, Volume
from portal.residency.models import ResidencyPolicy
from tests.api.conftest import assert_problem
from tests.api.world import KEY_A
from tests.factories import InstanceFactory


def test_ssh_keys_add_list_refuse_duplicates_delete(owner_api, project):
    added = owner_api.post("ssh-keys", {"project": project.slug, "public_key": KEY_A})
    assert added.status_code == 201 and added.json()["name"] == "alice@laptop"
    body = assert_problem(owner_api.post("ssh-keys", {"project": project.pk, "public_key": KEY_A}), 409)
    assert "already in the project as “alice@laptop”" in body["detail"]
    body = assert_problem(
        owner_api.post("ssh-keys", {"project": project.pk, "public_key": "ssh-rsa nope"}), 422
    )
    assert body["errors"][0]["field"] == "public_key"
    assert [k["name"] for k in owner_api.get("ssh-keys", project=project.slug).json()["items"]] == [
        "alice@laptop"
    ]
    assert owner_api.delete(f"ssh-keys/{added.json()['id']}").status_code == 204
    assert not SshKey.objects.exists()
    assert AuditEvent.objects.filter(action__startswith="sshkey.").count() == 2


def test_firewalls_presets_rules_and_in_use(owner_api, project, catalog):
    created = owner_api.post("firewalls", {"project": project.pk, "preset": "web"}).json()
    assert created["name"] == "web-and-ssh" and len(created["rules"]) == 3
    fw = created["id"]
    with_rule = owner_api.post(
        f"firewalls/{fw}/rules", {"protocol": "tcp", "port_from": 5432, "source": "10.0.0.1"}
    )
    assert with_rule.status_code == 201
    rule = next(r for r in with_rule.json()["rules"] if r["port_from"] == 5432)
    assert rule["source"] == "10.0.0.1/32"
    body = assert_problem(
        owner_api.post(f"firewalls/{fw}/rules", {"protocol": "icmp", "port_from": 1, "source": "0.0.0.0/0"}),
        422,
    )
    assert "ICMP has no ports" in body["detail"]
    assert owner_api.delete(f"firewalls/{fw}/rules/{rule['id']}").status_code == 204
    InstanceFactory(project=project, name="web-1", firewall=FirewallRuleSet.objects.get(pk=fw))
    body = assert_problem(owner_api.delete(f"firewalls/{fw}"), 409)
    assert "still used by web-1" in body["detail"]


def test_volumes_follow_placement_and_quota(owner_api, org, project, catalog):
    policy = ResidencyPolicy.objects.create(organization=org, name="EU only")
    policy.jurisdictions.set(Jurisdiction.objects.filter(code="eu"))
    body = assert_problem(
        owner_api.post("volumes", {"project": project.pk, "name": "data", "zone": "iad1-a", "size_gib": 10}),
        403,
    )
    assert body["detail"].startswith("Blocked by organization policy") and body["title"] == "Placement denied"
    body = assert_problem(
        owner_api.post(
            "volumes", {"project": project.pk, "name": "data", "zone": "fra1-a", "size_gib": 5000}
        ),
        403,
    )
    assert "volume storage: needs 5000 GiB" in body["detail"]
    assert not Volume.objects.exists()  # the whole life of one: tests/api/test_volumes.py


def test_catalog_zones_say_whether_the_policy_allows_them(owner_api, org, catalog):
    policy = ResidencyPolicy.objects.create(organization=org, name="EU only")
    policy.jurisdictions.set(Jurisdiction.objects.filter(code="eu"))
    zones = {z["code"]: z for z in owner_api.get("catalog/zones").json()["items"]}
    assert zones["fra1-a"]["placement"] == {"allowed": True, "reasons": []}
    assert zones["fra1-a"]["jurisdiction"] == "eu" and zones["fra1-a"]["availability"] == "available"
    assert not zones["iad1-a"]["placement"]["allowed"]
    assert "Ashburn" in zones["iad1-a"]["placement"]["reasons"][0]
    assert zones["par1-b"]["status"] == "sold_out" and not zones["par1-b"]["accepts_launches"]
    flavors = owner_api.get("catalog/flavors").json()["items"]
    assert all(Decimal(f["price_hourly"]) > 0 and f["currency"] == "EUR" for f in flavors)


def test_budget_set_read_remove(owner_api, project):
    assert owner_api.get(f"projects/{project.pk}/budget").json()["amount"] is None
    saved = owner_api.put(f"projects/{project.pk}/budget", {"amount": "300", "guard": "block"}).json()
    assert (Decimal(saved["amount"]), saved["guard"], saved["level"]) == (Decimal("300.00"), "block", "ok")
    assert Budget.objects.get(project=project).amount == Decimal("300.00")
    assert_problem(owner_api.put(f"projects/{project.pk}/budget", {"amount": "-1"}), 422)
    assert owner_api.delete(f"projects/{project.pk}/budget").status_code == 204
    assert not Budget.objects.exists()
    assert AuditEvent.objects.filter(action="budget.changed").count() >= 2


def test_usage_periods_use_the_usage_pages_rules(owner_api, project):
    usage = owner_api.get(f"projects/{project.pk}/usage", start="2026-01-01", end="2026-01-31").json()
    assert usage["period"]["days"] == 31 and usage["costs_included"]
    assert usage["totals"]["cost"] == "0.00"
    body = assert_problem(
        owner_api.get(f"projects/{project.pk}/usage", start="2026-02-01", end="2026-01-01"), 422
    )
    assert "start date must be on or before" in body["detail"]
