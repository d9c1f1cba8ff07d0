"""Firewalls applied live on the simulated cloud: attaching, switching and detaching a server's
firewall, and changing a rule set's rules, each reach the cloud by a `firewall_apply` operation
(stepped here as the worker would); the server shows applying / applied / failed; bad requests are
refused whole and change nothing."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from portal.audit.models import AuditAction, AuditEvent
from portal.compute.backends.firewall import ALL_INBOUND, same_rules
from portal.compute.models import (
    Action,
    FirewallRule,
    FirewallRuleSet,
    FirewallState,
    Instance,
    Operation,
    SimulatedServer,
)
from portal.compute.services import firewalls as firewall_services
from portal.compute.services.common import ComputeRefused
from portal.compute.services.instance_firewall import instance_firewall_set
from portal.tenancy.access import project_access
from tests.factories import ProjectFactory
from tests.steps import drive, step

SSH = {"protocol": "tcp", "port_from": 22, "port_to": 22, "source": "203.0.113.7/32"}
HTTPS = {"protocol": "tcp", "port_from": 443, "port_to": 443, "source": "0.0.0.0/0"}


@pytest.fixture
def running(launch):
    def go(name="web", **extra) -> Instance:
        batch = launch(name=name, **extra)
        drive(Operation.objects.get(instance__batch=batch))
        instance = batch.instances.get()
        assert instance.status == "running"
        return instance

    return go


@pytest.fixture
def ssh_only(access, project, owner):
    rule_set = FirewallRuleSet.objects.create(project=project, name="ssh-only", created_by=owner)
    FirewallRule.objects.create(rule_set=rule_set, **SSH)
    return rule_set


def cloud_rules(instance: Instance):
    return SimulatedServer.objects.get(backend_id=instance.backend_id).firewall_rules


def applies(instance: Instance):
    return Operation.objects.filter(instance=instance, action=Action.FIREWALL_APPLY)


def set_firewall(access, instance, rule_set, callbacks):
    with callbacks():
        return instance_firewall_set(access=access, instance=instance, rule_set=rule_set)


def test_attached_to_a_running_server_the_rules_reach_the_cloud(
    access, running, ssh_only, django_capture_on_commit_callbacks
):
    server = running()
    assert same_rules(cloud_rules(server), ALL_INBOUND)  # launched without a firewall
    op = set_firewall(access, server, ssh_only, django_capture_on_commit_callbacks)
    server.refresh_from_db()
    assert (server.firewall, server.firewall_state) == (ssh_only, FirewallState.APPLYING)
    assert same_rules(cloud_rules(server), ALL_INBOUND)  # not yet: the worker does it
    drive(op)
    server.refresh_from_db()
    assert server.firewall_state == FirewallState.APPLIED and server.firewall_applied_at
    assert same_rules(cloud_rules(server), [SSH])
    event = AuditEvent.objects.get(action=AuditAction.INSTANCE_FIREWALL)
    assert event.changes == {"firewall": [None, "ssh-only"]}


def test_asking_again_changes_nothing(access, running, ssh_only, django_capture_on_commit_callbacks):
    server = running()
    first = set_firewall(access, server, ssh_only, django_capture_on_commit_callbacks)
    again = set_firewall(access, server, ssh_only, django_capture_on_commit_callbacks)
    assert again == first and applies(server).count() == 1
    drive(first)
    assert set_firewall(access, server, ssh_only, django_capture_on_commit_callbacks) is None
    assert applies(server).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.INSTANCE_FIREWALL).count() == 1


def test_switched_then_detached_on_a_stopped_server(
    access, project, owner, running, ssh_only, django_capture_on_commit_callbacks
):
    from portal.compute.services import instance_action

    server = running()
    with django_capture_on_commit_callbacks():
        stop = instance_action(access=access, instance=server, action="stop")
    drive(stop)
    server.refresh_from_db()
    assert server.status == "stopped"
    web = FirewallRuleSet.objects.create(project=project, name="web", created_by=owner)
    FirewallRule.objects.create(rule_set=web, **HTTPS)
    drive(set_firewall(access, server, ssh_only, django_capture_on_commit_callbacks))
    drive(set_firewall(access, server, web, django_capture_on_commit_callbacks))
    server.refresh_from_db()
    assert same_rules(cloud_rules(server), [HTTPS]) and server.firewall == web
    drive(set_firewall(access, server, None, django_capture_on_commit_callbacks))
    server.refresh_from_db()
    assert server.firewall is None and server.firewall_state == FirewallState.APPLIED
    assert same_rules(cloud_rules(server), ALL_INBOUND)


def test_a_rule_added_or_removed_reaches_every_server_using_the_set(
    access, running, ssh_only, django_capture_on_commit_callbacks
):
    one, two, other = running("one"), running("two"), running("other")
    drive(*[set_firewall(access, s, ssh_only, django_capture_on_commit_callbacks) for s in (one, two)])
    with django_capture_on_commit_callbacks():
        rule = firewall_services.firewall_rule_add(access=access, rule_set=ssh_only, **HTTPS)
    ops = list(Operation.objects.filter(action=Action.FIREWALL_APPLY, state="pending"))
    assert {op.instance_id for op in ops} == {one.pk, two.pk}
    drive(*ops)
    assert same_rules(cloud_rules(one), [SSH, HTTPS]) and same_rules(cloud_rules(two), [SSH, HTTPS])
    assert same_rules(cloud_rules(other), ALL_INBOUND)
    with django_capture_on_commit_callbacks():
        firewall_services.firewall_rule_delete(access=access, rule=rule)
    drive(*Operation.objects.filter(action=Action.FIREWALL_APPLY, state="pending"))
    assert same_rules(cloud_rules(one), [SSH]) and same_rules(cloud_rules(two), [SSH])


def test_two_changes_before_the_worker_runs_are_one_apply_with_both(
    access, running, ssh_only, django_capture_on_commit_callbacks
):
    server = running()
    drive(set_firewall(access, server, ssh_only, django_capture_on_commit_callbacks))
    with django_capture_on_commit_callbacks():
        firewall_services.firewall_rule_add(access=access, rule_set=ssh_only, **HTTPS)
        firewall_services.firewall_rule_add(
            access=access, rule_set=ssh_only, protocol="icmp", port_from=None, port_to=None, source="::/0"
        )
    (op,) = Operation.objects.filter(action=Action.FIREWALL_APPLY, state="pending")
    drive(op)
    assert len(cloud_rules(server)) == 3


def test_a_rule_the_cloud_refuses_shows_failed_with_the_reason(
    access, running, ssh_only, django_capture_on_commit_callbacks
):
    server = running()
    # Written past the service (which would refuse it): the cloud refuses it too.
    FirewallRule.objects.create(
        rule_set=ssh_only, protocol="tcp", port_from=500, port_to=100, source="0.0.0.0/0"
    )
    drive(set_firewall(access, server, ssh_only, django_capture_on_commit_callbacks))
    server.refresh_from_db()
    assert server.firewall_state == FirewallState.FAILED
    assert "not valid" in server.firewall_message
    assert same_rules(cloud_rules(server), ALL_INBOUND)  # nothing changed in the cloud


def test_a_transient_fault_is_retried(access, running, ssh_only, knobs, django_capture_on_commit_callbacks):
    server = running()
    op = set_firewall(access, server, ssh_only, django_capture_on_commit_callbacks)
    knobs.transient_error_rate = 1
    knobs.save()
    step(op)
    op.refresh_from_db()
    assert op.state == "running" and op.attempts == 1
    knobs.transient_error_rate = 0
    knobs.save()
    drive(op)
    assert same_rules(cloud_rules(server), [SSH])


def test_a_worker_killed_after_the_cloud_call_is_finished_by_a_rerun(
    access, running, ssh_only, django_capture_on_commit_callbacks
):
    """The cloud has the new rules, the operation does not know: the reconciler's new chain
    submits again (the same rules, nothing changes) and finishes it."""
    from portal.compute.backends import get_backend

    server = running()
    op = set_firewall(access, server, ssh_only, django_capture_on_commit_callbacks)
    get_backend("simulated").apply_firewall(server.backend_id, (SSH,))  # what the killed step did
    Operation.objects.filter(pk=op.pk).update(state="running")  # claimed, never accepted
    drive(op)
    server.refresh_from_db()
    assert server.firewall_state == FirewallState.APPLIED and same_rules(cloud_rules(server), [SSH])


def test_a_firewall_of_another_project_is_refused_and_nothing_changes(
    access, org, owner, running, django_capture_on_commit_callbacks
):
    server = running()
    theirs = FirewallRuleSet.objects.create(project=ProjectFactory(organization=org, slug="other"), name="x")
    with pytest.raises(ComputeRefused) as refused:
        set_firewall(access, server, theirs, django_capture_on_commit_callbacks)
    assert refused.value.status == 400 and refused.value.field == "firewall"
    server.refresh_from_db()
    assert server.firewall is None and not applies(server).exists()


def test_a_viewer_may_not(project, viewer, running, ssh_only, django_capture_on_commit_callbacks):
    server = running()
    access = project_access(viewer, project.organization.slug, project.slug)
    with pytest.raises(PermissionDenied):
        set_firewall(access, server, ssh_only, django_capture_on_commit_callbacks)
    assert not applies(server).exists()


def test_a_zone_without_firewall_rules_refuses_in_plain_words(
    access, catalog, running, ssh_only, django_capture_on_commit_callbacks
):
    server = running()
    zone = catalog["fra1-a"]
    zone.backend_settings = {"absent": ["firewall"]}
    zone.save()
    with pytest.raises(ComputeRefused) as refused:
        set_firewall(access, server, ssh_only, django_capture_on_commit_callbacks)
    assert refused.value.message == "Firewall rules are not available in fra1-a."
    assert refused.value.status == 409
    # A rule change does not queue applies a zone cannot do.
    server.firewall = ssh_only
    server.save()
    with django_capture_on_commit_callbacks():
        firewall_services.firewall_rule_add(access=access, rule_set=ssh_only, **HTTPS)
    assert not applies(server).exists()


def test_a_server_being_created_is_refused(access, launch, ssh_only, django_capture_on_commit_callbacks):
    server = launch(name="new").instances.get()
    with pytest.raises(ComputeRefused) as refused:
        set_firewall(access, server, ssh_only, django_capture_on_commit_callbacks)
    assert refused.value.status == 409 and "running or stopped" in refused.value.message
