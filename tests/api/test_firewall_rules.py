"""A firewall rule the set already has: a 409 that names it, through the API as on the web page."""

from __future__ import annotations

from portal.audit.models import AuditEvent
from portal.compute.models import FirewallRuleSet
from tests.api.conftest import assert_problem


def test_a_rule_the_set_already_has_is_a_409_and_changes_nothing(owner_api, project):
    rule_set = FirewallRuleSet.objects.create(project=project, name="db")
    path = f"firewalls/{rule_set.pk}/rules"
    first = owner_api.post(path, {"protocol": "tcp", "port_from": 22, "source": "203.0.113.4"})
    assert first.status_code == 201
    events = AuditEvent.objects.count()
    again = {
        "protocol": "tcp",
        "port_from": 22,
        "port_to": 22,
        "source": "203.0.113.4/32",
        "description": "x",
    }
    body = assert_problem(owner_api.post(path, again), 409)
    assert body["detail"] == "This rule set already has that rule (TCP 22 from 203.0.113.4/32)."
    rules = owner_api.get(f"firewalls/{rule_set.pk}").json()["rules"]
    assert [(r["port_from"], r["source"], r["description"]) for r in rules] == [(22, "203.0.113.4/32", "")]
    assert AuditEvent.objects.count() == events
