"""Leases: set and clear on the page; a reminder once, a day before; the stop at the time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.audit.models import AuditAction, AuditEvent
from portal.budgets.leases import leases_enforce
from portal.budgets.models import InstanceLease
from portal.budgets.services import lease_set
from portal.compute import services
from portal.compute.models import Action, Operation
from portal.tenancy.access import project_access
from portal.tenancy.models import Membership
from tests.steps import drive


def _url(project) -> str:
    return reverse("budgets:project_leases", args=[project.organization.slug, project.slug])


@pytest.fixture
def enforce(django_capture_on_commit_callbacks, mailoutbox, monkeypatch):
    """Run the beat task's work at `now`; mail is delivered after commit, and the stop's worker
    task is not queued (the test drives the runner itself)."""
    from portal.compute.tasks import operations_advance

    monkeypatch.setattr(operations_advance, "delay", lambda *args: None)

    def run(now):
        before = len(mailoutbox)
        with django_capture_on_commit_callbacks(execute=True):
            result = leases_enforce(now=now)
        return result, mailoutbox[before:]

    return run


def _drive(op) -> None:
    drive(op)


# --- The page ---------------------------------------------------------------------------------


def test_a_member_sets_a_lease_that_runs_through_the_chosen_day(project, member, running, client_as):
    (server,) = running(name="web")
    day = timezone.now().date() + timedelta(days=3)
    response = client_as(member).post(_url(project), {"instance": str(server.pk), "stop_on": day.isoformat()})
    assert response.status_code == 302
    lease = InstanceLease.objects.get(instance=server)
    assert lease.stop_at == datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert (lease.last_day, lease.created_by) == (day, member)
    assert AuditEvent.objects.get(action=AuditAction.LEASE_SET).actor == member
    client_as(member).post(_url(project), {"instance": str(server.pk), "stop_on": day.isoformat()})
    assert AuditEvent.objects.filter(action=AuditAction.LEASE_SET).count() == 1  # a repeat: no change
    page = client_as(member).get(_url(project)).content.decode()
    assert f'value="{day.isoformat()}"' in page and "Runs through" in page


def test_clear_a_lease(project, member, owner, running, client_as):
    (server,) = running(name="web")
    InstanceLease.objects.create(
        instance=server, stop_at=timezone.now() + timedelta(days=2), created_by=owner
    )
    response = client_as(member).post(_url(project), {"instance": str(server.pk), "action": "clear"})
    assert response.status_code == 302
    assert not InstanceLease.objects.exists()
    assert AuditEvent.objects.get(action=AuditAction.LEASE_CLEARED).actor == member


@pytest.mark.parametrize(
    ("stop_on", "message"),
    [
        ("", "Choose the last day the server should run."),
        ("yesterday", "Enter a date such as 2030-06-30."),
        ("2001-01-01", "Choose today or a later day."),
        ("2999-01-01", "Choose a day within a year"),
    ],
)
def test_bad_dates_are_a_400(stop_on, message, project, member, running, client_as):
    (server,) = running(name="web")
    response = client_as(member).post(_url(project), {"instance": str(server.pk), "stop_on": stop_on})
    assert response.status_code == 400 and message in response.content.decode()
    assert not InstanceLease.objects.exists()


def test_only_running_servers_of_this_project(project, member, running, client_as, access):
    from tests.factories import InstanceFactory, ProjectFactory

    other = InstanceFactory(project=ProjectFactory(organization=project.organization), status="running")
    day = (timezone.now().date() + timedelta(days=3)).isoformat()
    response = client_as(member).post(_url(project), {"instance": str(other.pk), "stop_on": day})
    assert (
        response.status_code == 400
        and "Choose one of the running servers listed." in response.content.decode()
    )
    (stopped,) = running(name="web")
    _drive(services.instance_action(access=access, instance=stopped, action="stop"))
    response = client_as(member).post(_url(project), {"instance": str(stopped.pk), "stop_on": day})
    assert response.status_code == 400


def test_viewers_read_the_page_but_cannot_set_leases(project, viewer, running, client_as):
    (server,) = running(name="web")
    client = client_as(viewer)
    page = client.get(_url(project))
    assert page.status_code == 200 and "web" in page.content.decode()
    assert 'name="stop_on"' not in page.content.decode()
    day = (timezone.now().date() + timedelta(days=3)).isoformat()
    assert client.post(_url(project), {"instance": str(server.pk), "stop_on": day}).status_code == 403
    assert not InstanceLease.objects.exists()


# --- Enforcement ------------------------------------------------------------------------------


def test_reminder_once_a_day_before_then_the_stop(project, owner, running, enforce, access):
    (server,) = running(name="web")
    stop_at = timezone.now() + timedelta(days=5)
    lease_set(access=access, instance=server, stop_at=stop_at)

    assert enforce(stop_at - timedelta(hours=25)) == ((0, 0), [])
    (counts, sent) = enforce(stop_at - timedelta(hours=23))
    assert counts == (1, 0) and [m.to for m in sent] == [["owner@example.com"]]
    assert sent[0].subject.startswith("web will be stopped")
    assert "its 50 GiB disk keeps its data and keeps costing 5.00 EUR a month" in sent[0].body
    assert enforce(stop_at - timedelta(hours=2)) == ((0, 0), [])  # reminded already

    (counts, sent) = enforce(stop_at + timedelta(minutes=3))
    assert counts == (0, 1) and sent == []
    server.refresh_from_db()
    assert server.status == "stopping"
    op = Operation.objects.get(instance=server, action=Action.STOP)
    assert op.requested_by == owner
    assert not InstanceLease.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.LEASE_EXPIRED, target_id=str(server.pk)).exists()
    assert enforce(stop_at + timedelta(minutes=20)) == ((0, 0), [])  # nothing left to do
    _drive(op)
    server.refresh_from_db()
    assert server.status == "stopped"


def test_a_server_no_longer_running_drops_its_lease(project, owner, running, enforce, access):
    (server,) = running(name="web")
    stop_at = timezone.now() + timedelta(days=2)
    lease_set(access=access, instance=server, stop_at=stop_at)
    _drive(services.instance_action(access=access, instance=server, action="stop"))
    assert enforce(stop_at + timedelta(minutes=1)) == ((0, 0), [])
    assert not InstanceLease.objects.exists()
    assert Operation.objects.filter(instance=server, action=Action.STOP).count() == 1  # only the user's


def test_when_the_creator_has_left_an_owner_stops_it(project, owner, member, running, enforce):
    (server,) = running(name="web")
    stop_at = timezone.now() + timedelta(days=2)
    mine = project_access(member, project.organization.slug, project.slug)
    lease_set(access=mine, instance=server, stop_at=stop_at)
    (_, sent) = enforce(stop_at - timedelta(hours=1))
    assert [m.to for m in sent] == [["member@example.com"]]  # the reminder goes to whoever set it
    Membership.objects.filter(user=member).delete()
    assert enforce(stop_at)[0] == (0, 1)
    assert Operation.objects.get(instance=server, action=Action.STOP).requested_by == owner


def test_changing_the_date_sends_a_new_reminder(project, owner, running, enforce, access):
    (server,) = running(name="web")
    stop_at = timezone.now() + timedelta(days=2)
    lease_set(access=access, instance=server, stop_at=stop_at)
    assert enforce(stop_at - timedelta(hours=1))[0] == (1, 0)
    later = stop_at + timedelta(days=3)
    lease_set(access=access, instance=server, stop_at=later)
    assert enforce(stop_at + timedelta(hours=1))[0] == (0, 0)  # not due any more
    assert enforce(later - timedelta(hours=1))[0] == (1, 0)
