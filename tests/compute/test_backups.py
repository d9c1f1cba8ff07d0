"""Scheduled backups: the schedule's rules (every problem at once), the beat's claim (one backup per
due schedule however many runs), retention after success only, the failure e-mail."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from portal.compute import backups
from portal.compute.models import (
    BackupSchedule,
    Instance,
    Operation,
    SimulatedServer,
    Snapshot,
    SnapshotStatus,
)
from portal.compute.services.backups import backup_schedule_set
from portal.compute.services.common import ComputeRefused
from portal.compute.services.snapshots import image_delete
from tests.steps import drive


@pytest.fixture
def server(launch):
    batch = launch(name="db")
    drive(Operation.objects.get(instance__batch=batch))
    return Instance.objects.get(batch=batch)


def _schedule(access, server, **changes) -> BackupSchedule:
    return backup_schedule_set(
        access=access,
        instance=server,
        **({"frequency": "daily", "hour": 3, "weekday": None, "keep": 2, "enabled": True} | changes),
    )


def _due(schedule: BackupSchedule) -> datetime:
    """Make the schedule due now (as if its hour had come) and return that moment."""
    BackupSchedule.objects.filter(pk=schedule.pk).update(next_run_at=datetime.now(UTC) - timedelta(minutes=1))
    return datetime.now(UTC)


def _run(now=None) -> list[Operation]:
    steps = backups.backups_run_due(now)
    operations = [Operation.objects.get(pk=pk) for pk, _, _ in steps]
    drive(*operations) if operations else None
    return operations


# --- The schedule -----------------------------------------------------------------------------


def test_next_run_daily_and_weekly():
    schedule = BackupSchedule(frequency="daily", hour=3)
    assert schedule.next_after(datetime(2026, 12, 2, 2, 59, tzinfo=UTC)) == datetime(
        2026, 12, 2, 3, tzinfo=UTC
    )
    assert schedule.next_after(datetime(2026, 12, 2, 3, 0, tzinfo=UTC)) == datetime(
        2026, 12, 3, 3, tzinfo=UTC
    )
    weekly = BackupSchedule(frequency="weekly", hour=22, weekday=6)  # Sundays (2026-12-06 is one)
    assert weekly.next_after(datetime(2026, 12, 2, 12, tzinfo=UTC)) == datetime(2026, 12, 6, 22, tzinfo=UTC)
    assert weekly.next_after(datetime(2026, 12, 6, 22, tzinfo=UTC)) == datetime(2026, 12, 13, 22, tzinfo=UTC)


def test_setting_a_schedule(access, server):
    schedule = _schedule(access, server, frequency="weekly", weekday=0, hour=23, keep=5)
    assert (schedule.frequency, schedule.weekday, schedule.hour, schedule.keep) == ("weekly", 0, 23, 5)
    assert schedule.next_run_at.weekday() == 0 and schedule.next_run_at.hour == 23
    assert schedule.summary == "Mondays at 23:00 UTC, the newest 5 kept"
    off = _schedule(access, server, enabled=False)
    assert off.pk == schedule.pk and off.next_run_at is None


def test_every_problem_of_a_schedule_at_once(access, server):
    with pytest.raises(ComputeRefused) as refused:
        _schedule(access, server, frequency="weekly", hour=24, keep=0, weekday=None)
    assert refused.value.status == 400
    assert [(p.field, p.message) for p in refused.value.problems] == [
        ("hour", "Choose an hour from 0 to 23 (UTC)."),
        ("weekday", "Choose the day of the week for weekly backups."),
        ("keep", "Keep at least 1 backup; to stop taking backups, turn them off."),
    ]
    assert not BackupSchedule.objects.exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keep": 31}, "At most 30 backups are kept."),
        ({"frequency": "hourly"}, "Choose daily or weekly backups."),
        ({"weekday": 7, "frequency": "weekly"}, "Choose a day from Monday to Sunday."),
        ({"hour": None}, "Choose an hour from 0 to 23 (UTC)."),
    ],
)
def test_each_rule_of_a_schedule(access, server, changes, message):
    with pytest.raises(ComputeRefused) as refused:
        _schedule(access, server, **changes)
    assert [p.message for p in refused.value.problems] == [message]
    assert not BackupSchedule.objects.exists()


def test_a_zone_without_server_snapshots_takes_no_backups(access, server):
    server.zone.backend_settings = {"absent": ["server_snapshots"]}
    server.zone.save()
    with pytest.raises(ComputeRefused) as refused:
        _schedule(access, server)
    assert refused.value.status == 409
    assert (
        refused.value.message
        == "Backups need server snapshots. Server snapshots are not available in fra1-a."
    )
    assert not BackupSchedule.objects.exists()


# --- The beat ---------------------------------------------------------------------------------


def test_a_due_backup_is_taken_once(access, server):
    schedule = _schedule(access, server)
    now = _due(schedule)
    operations = _run(now)
    assert len(operations) == 1
    backup = Snapshot.objects.get(schedule=schedule)
    assert (backup.kind, backup.status, backup.source_instance) == (
        "backup",
        SnapshotStatus.AVAILABLE,
        server,
    )
    assert backup.image.project == server.project
    schedule.refresh_from_db()
    assert schedule.next_run_at == schedule.next_after(now) and schedule.next_run_at > now
    assert _run(now) == []  # the same beat again: not due any more
    assert Snapshot.objects.filter(schedule=schedule).count() == 1


def test_two_runs_that_read_the_same_due_schedule_make_one_backup(access, server, monkeypatch):
    """Both runs read the schedule as due; only the one whose conditional UPDATE moves
    next_run_at records a backup (the other finds it moved)."""
    schedule = _schedule(access, server)
    now = _due(schedule)
    seen = list(BackupSchedule.objects.filter(pk=schedule.pk).values_list("pk", "next_run_at"))
    first = backups.backups_run_due(now)
    # The second run read the same rows before the first committed its claim.
    real_filter = BackupSchedule.objects.filter

    class StaleRead:
        def order_by(self, *args):
            return self

        def values_list(self, *args):
            return self

        def __getitem__(self, item):
            return seen

    monkeypatch.setattr(
        BackupSchedule.objects,
        "filter",
        lambda *a, **kw: StaleRead() if "next_run_at__lte" in kw else real_filter(*a, **kw),
    )
    second = backups.backups_run_due(now)
    assert len(first) == 1 and second == []
    assert Snapshot.objects.filter(schedule=schedule).count() == 1


def test_retention_deletes_the_oldest_only_after_the_new_backup_succeeded(access, server):
    schedule = _schedule(access, server, keep=2)
    made = []
    for _ in range(2):
        _run(_due(schedule))
        made.append(Snapshot.objects.filter(schedule=schedule).latest("created_at"))
    # A third backup is under way: nothing is deleted before it succeeds.
    steps = backups.backups_run_due(_due(schedule))
    assert Snapshot.objects.filter(schedule=schedule, status=SnapshotStatus.AVAILABLE).count() == 2
    assert not Operation.objects.filter(action="snapshot_delete").exists()
    drive(*[pk for pk, _, _ in steps])
    oldest = Snapshot.objects.get(pk=made[0].pk)
    assert oldest.status == SnapshotStatus.DELETING and not oldest.image.is_active
    retire = Operation.objects.get(action="snapshot_delete")
    assert retire.snapshot_id == oldest.pk and retire.requested_by is None
    drive(retire)
    statuses = dict(Snapshot.objects.filter(schedule=schedule).values_list("pk", "status"))
    assert statuses.pop(oldest.pk) == SnapshotStatus.DELETED
    assert list(statuses.values()) == [SnapshotStatus.AVAILABLE] * 2


def test_a_failed_backup_deletes_nothing_and_mails_owners_and_admins(
    access, server, owner, admin_user, member, mailoutbox, django_capture_on_commit_callbacks
):
    schedule = _schedule(access, server, keep=1)
    _run(_due(schedule))
    kept = Snapshot.objects.get(schedule=schedule)
    steps = backups.backups_run_due(_due(schedule))
    SimulatedServer.objects.filter(backend_id=server.backend_id).update(deleted=True)  # the cloud lost it
    with django_capture_on_commit_callbacks(execute=True):
        drive(*[pk for pk, _, _ in steps])
    failed = Snapshot.objects.filter(schedule=schedule).latest("created_at")
    assert failed.status == SnapshotStatus.ERROR
    assert Snapshot.objects.get(pk=kept.pk).status == SnapshotStatus.AVAILABLE
    assert not Operation.objects.filter(action="snapshot_delete").exists()
    assert sorted(m.to[0] for m in mailoutbox) == ["admin@example.com", "owner@example.com"]
    message = mailoutbox[0]
    assert message.subject.endswith("Backup of db failed")
    assert "The server no longer exists in the cloud." in message.body
    assert f"{server.get_absolute_url()}#backups" in message.body


def test_a_server_that_cannot_be_snapshotted_at_its_hour_is_a_failed_backup(
    access, server, mailoutbox, django_capture_on_commit_callbacks
):
    schedule = _schedule(access, server)
    Instance.objects.filter(pk=server.pk).update(status="resizing")
    with django_capture_on_commit_callbacks(execute=True):
        assert backups.backups_run_due(_due(schedule)) == []
    failed = Snapshot.objects.get(schedule=schedule)
    assert failed.status == SnapshotStatus.ERROR
    assert failed.fault_message == "db is being resized: it can't be snapshotted now."
    assert [m.to for m in mailoutbox] == [["owner@example.com"]]


def test_a_terminated_server_s_schedule_stops(access, server):
    schedule = _schedule(access, server)
    Instance.objects.filter(pk=server.pk).update(status="terminated")
    assert backups.backups_run_due(_due(schedule)) == []
    schedule.refresh_from_db()
    assert not schedule.enabled and schedule.next_run_at is None
    assert not Snapshot.objects.exists()


def test_an_image_that_scheduled_backups_need_is_not_deleted(access, server, launch):
    from portal.compute.services.snapshots import snapshot_create

    op = snapshot_create(access=access, instance=server, name="golden")
    drive(op)
    image = Snapshot.objects.get(pk=op.snapshot_id).image
    batch = launch(name="child", image=image.name, root_disk_gib=server.root_disk_gib)
    drive(Operation.objects.get(instance__batch=batch))
    child = Instance.objects.get(batch=batch)
    _schedule(access, child)
    with pytest.raises(ComputeRefused) as refused:
        image_delete(access=access, image=image)
    assert refused.value.status == 409
    assert refused.value.message == (
        "child was launched from golden and has scheduled backups, which need it: turn its backups off first."
    )
    assert Snapshot.objects.get(pk=op.snapshot_id).status == SnapshotStatus.AVAILABLE
    _schedule(access, child, enabled=False)
    drive(image_delete(access=access, image=image))
    assert Snapshot.objects.get(pk=op.snapshot_id).status == SnapshotStatus.DELETED


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_on_postgresql_make_one_backup(access, server):
    """Two beats at the same moment, each in its own connection: the row lock and the conditional
    UPDATE let one through."""
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent connections (PostgreSQL)")
    schedule = _schedule(access, server)
    now = _due(schedule)
    barrier, results = threading.Barrier(2), []

    def run():
        from django.db import connection as conn

        barrier.wait()
        try:
            results.append(backups.backups_run_due(now))
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0, 1]
    assert Snapshot.objects.filter(schedule=schedule).count() == 1
