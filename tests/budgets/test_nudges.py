"""Forgotten servers: one digest a week per project, to its owners, with what stopping would save."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.budgets.models import InstanceLease, NudgeDigest
from portal.budgets.nudges import nudge_forgotten_all
from portal.compute.backends.simulated import SimulatedBackend


@pytest.fixture
def cpu(monkeypatch):
    """cpu[backend_id] = average percent to report (absent: the backend reports nothing)."""
    figures: dict[str, float] = {}

    def samples(self, backend_id, start, end):
        if backend_id not in figures:
            return []
        return [(start, figures[backend_id]), (end, figures[backend_id])]

    monkeypatch.setattr(SimulatedBackend, "cpu_samples", samples, raising=False)
    return figures


@pytest.fixture
def nudge(django_capture_on_commit_callbacks, mailoutbox):
    def run(now):
        before = len(mailoutbox)
        with django_capture_on_commit_callbacks(execute=True):
            nudge_forgotten_all(now=now)
        return mailoutbox[before:]

    return run


def _monday_after(moment):
    day = moment + timedelta(days=7 - moment.weekday())
    return day.replace(hour=7, minute=0, second=0, microsecond=0)


def test_one_digest_a_week_with_the_saving(project, owner, member, running, cpu, nudge):
    idle, busy = running(name="idle"), running(name="busy")
    running(name="quiet")  # reports no figures: unknown, never nudged
    licensed = running(name="win", image="Windows Server 2025", root_disk_gib=60)
    cpu[idle[0].backend_id] = 1.5
    cpu[busy[0].backend_id] = 40.0
    cpu[licensed[0].backend_id] = 0.5
    now = _monday_after(timezone.now() + timedelta(days=14))

    sent = nudge(now)
    assert [m.to for m in sent] == [["owner@example.com"]]
    mail = sent[0]
    assert mail.subject == "2 servers have been idle for a week in Web shop: stop to save 51.10 EUR a month"
    assert "idle (" in mail.body and "win (" in mail.body
    assert "busy" not in mail.body and "quiet" not in mail.body
    # 0.011 an hour for the size: 8.03 a month; Windows adds its licence (0.048): 8.03 + 35.04.
    assert "stopping it saves 8.03 EUR a month; its 50 GiB disk keeps costing 5.00 EUR a month" in mail.body
    assert "stopping it saves 43.07 EUR a month; its 60 GiB disk keeps costing 6.00 EUR a month" in mail.body
    assert "average CPU 1.5 %" in mail.body
    assert "http://127.0.0.1:8000/o/acme/p/web-shop/leases/" in mail.body
    digest = NudgeDigest.objects.get()
    assert (digest.week, digest.instance_names) == (now.date(), ["idle", "win"])

    assert nudge(now) == []  # the same week: nothing more
    assert nudge(now + timedelta(days=3)) == []
    assert len(nudge(now + timedelta(days=7))) == 1  # next week, still idle: again


def test_young_servers_and_servers_with_a_lease_are_left_alone(project, owner, running, cpu, nudge):
    (young,) = running(name="young")
    (leased,) = running(name="leased")
    cpu[young.backend_id] = cpu[leased.backend_id] = 0.2
    InstanceLease.objects.create(
        instance=leased, stop_at=timezone.now() + timedelta(days=60), created_by=owner
    )
    assert nudge(timezone.now() + timedelta(days=13)) == []  # young is 13 days old
    sent = nudge(timezone.now() + timedelta(days=15))
    assert len(sent) == 1 and "young" in sent[0].body and "leased" not in sent[0].body


def test_stopped_servers_are_not_nudged(project, owner, running, cpu, nudge, access):
    from portal.compute import services
    from tests.steps import drive

    (server,) = running(name="idle")
    cpu[server.backend_id] = 0.2
    op = services.instance_action(access=access, instance=server, action="stop")
    drive(op)
    assert nudge(timezone.now() + timedelta(days=20)) == []


def test_the_threshold_comes_from_settings(project, owner, running, cpu, nudge, settings):
    settings.PORTAL_NUDGE_CPU_PERCENT = 50
    settings.PORTAL_NUDGE_DAYS = 3
    (server,) = running(name="medium")
    cpu[server.backend_id] = 30.0
    assert len(nudge(timezone.now() + timedelta(days=4))) == 1
