"""The reconciler's firewall pass on the simulated cloud: rules changed behind the portal's back
come back; rules as the portal holds them are recorded as applied; a server whose apply failed is
not asked again every minute."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.audit.models import AuditAction, AuditEvent
from portal.compute import reconciler
from portal.compute.backends import get_backend
from portal.compute.backends.firewall import ALL_INBOUND, same_rules
from portal.compute.models import Action, FirewallRule, FirewallRuleSet, FirewallState, Operation
from portal.compute.services.instance_firewall import instance_firewall_set
from tests.compute.test_firewall_live import SSH, cloud_rules, running  # noqa: F401
from tests.steps import drive

OPEN_DB = ({"protocol": "tcp", "port_from": 5432, "port_to": 5432, "source": "0.0.0.0/0"},)


@pytest.fixture
def guarded(access, project, owner, running, django_capture_on_commit_callbacks):  # noqa: F811
    rule_set = FirewallRuleSet.objects.create(project=project, name="ssh-only", created_by=owner)
    FirewallRule.objects.create(rule_set=rule_set, **SSH)
    server = running()
    with django_capture_on_commit_callbacks():
        drive(instance_firewall_set(access=access, instance=server, rule_set=rule_set))
    server.refresh_from_db()
    return server


def test_rules_changed_behind_the_portals_back_come_back(guarded, django_capture_on_commit_callbacks):
    get_backend("simulated").set_firewall_behind_the_portals_back(guarded.backend_id, OPEN_DB)
    with django_capture_on_commit_callbacks():
        report = reconciler.reconcile()
    assert str(guarded.pk) in report.drifted
    (op,) = Operation.objects.filter(instance=guarded, action=Action.FIREWALL_APPLY, state="pending")
    guarded.refresh_from_db()
    assert guarded.firewall_state == FirewallState.APPLYING
    event = AuditEvent.objects.get(action=AuditAction.INSTANCE_CHANGED_OUTSIDE)
    assert "firewall rules" in event.changes
    with django_capture_on_commit_callbacks():
        assert reconciler.reconcile().drifted == []  # the apply is under way: not asked twice
    drive(op)
    assert same_rules(cloud_rules(guarded), [SSH])
    guarded.refresh_from_db()
    assert guarded.firewall_state == FirewallState.APPLIED
    assert reconciler.reconcile().drifted == []


def test_a_launch_s_rules_are_confirmed_as_applied(running):  # noqa: F811
    server = running()
    assert server.firewall_state == FirewallState.UNKNOWN
    assert reconciler.reconcile().drifted == []
    server.refresh_from_db()
    assert server.firewall_state == FirewallState.APPLIED and same_rules(cloud_rules(server), ALL_INBOUND)


def test_a_failed_apply_is_tried_again_only_after_a_while(guarded, django_capture_on_commit_callbacks):
    get_backend("simulated").set_firewall_behind_the_portals_back(guarded.backend_id, OPEN_DB)
    type(guarded).objects.filter(pk=guarded.pk).update(firewall_state=FirewallState.FAILED)
    Operation.objects.filter(instance=guarded, action=Action.FIREWALL_APPLY).update(
        finished_at=timezone.now()
    )
    assert reconciler.reconcile().drifted == []
    Operation.objects.filter(instance=guarded, action=Action.FIREWALL_APPLY).update(
        finished_at=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks():
        assert reconciler.reconcile().drifted == [str(guarded.pk)]


def test_a_zone_without_firewall_rules_is_not_checked(catalog, guarded):
    get_backend("simulated").set_firewall_behind_the_portals_back(guarded.backend_id, OPEN_DB)
    catalog["fra1-a"].backend_settings = {"absent": ["firewall"]}
    catalog["fra1-a"].save()
    assert reconciler.reconcile().drifted == []
    assert not Operation.objects.filter(
        instance=guarded, action=Action.FIREWALL_APPLY, state="pending"
    ).exists()
