"""A snapshot, a backup and the image a server snapshot is stay in the zone they were taken in: once
the residency policy no longer allows that zone, no server boots from them there and no backup is
taken there, each refusal with the policy's reason."""

from __future__ import annotations

import pytest

from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Region
from portal.compute import backups
from portal.compute.models import Instance, Operation, Snapshot, SnapshotKind, SnapshotStatus
from portal.compute.services.backups import backup_schedule_set
from portal.compute.services.snapshots import snapshot_create
from portal.residency.models import ResidencyPolicy
from portal.residency.placement import PlacementDenied
from tests.compute.test_backups import _due
from tests.steps import drive

FRANKFURT_REFUSED = "Frankfurt is not one of the allowed regions (Amsterdam)"


@pytest.fixture
def server(launch):
    batch = launch(name="db")
    drive(Operation.objects.get(instance__batch=batch))
    return Instance.objects.get(batch=batch)


def _amsterdam_only(org) -> ResidencyPolicy:
    """The organization's policy narrowed, after the fact, to Amsterdam: Frankfurt is out."""
    policy = ResidencyPolicy.objects.create(organization=org, name="Amsterdam only")
    policy.regions.set(Region.objects.filter(code="ams1"))
    return policy


def test_no_server_boots_from_a_project_image_in_a_zone_the_policy_forbids(access, server, launch, org):
    op = snapshot_create(access=access, instance=server, name="golden")
    drive(op)
    image = Snapshot.objects.get(pk=op.snapshot_id).image
    assert image is not None and image.zones.get().code == "fra1-a"
    _amsterdam_only(org)

    with pytest.raises(PlacementDenied) as denied:
        launch(name="copy", image=image.name, root_disk_gib=server.root_disk_gib)
    assert FRANKFURT_REFUSED in denied.value.decision.reason
    assert list(Instance.objects.values_list("name", flat=True)) == ["db"]
    event = AuditEvent.objects.get(action=AuditAction.PLACEMENT_DENIED)
    assert event.changes["attempted"] == [None, "launch 1 server(s) in fra1-a"]
    assert FRANKFURT_REFUSED in event.changes["reason"][1]


def test_no_snapshot_is_taken_in_a_zone_the_policy_forbids(access, server, org):
    _amsterdam_only(org)
    with pytest.raises(PlacementDenied) as denied:
        snapshot_create(access=access, instance=server, name="late")
    assert FRANKFURT_REFUSED in denied.value.decision.reason
    assert not Snapshot.objects.exists()


def test_no_backup_is_taken_in_a_zone_the_policy_no_longer_allows(
    access, server, org, mailoutbox, django_capture_on_commit_callbacks
):
    schedule = backup_schedule_set(
        access=access, instance=server, frequency="daily", hour=3, weekday=None, keep=2
    )
    _amsterdam_only(org)
    with django_capture_on_commit_callbacks(execute=True):
        assert backups.backups_run_due(_due(schedule)) == []
    failed = Snapshot.objects.get(schedule=schedule)
    assert (failed.kind, failed.status, failed.zone.code) == (
        SnapshotKind.BACKUP,
        SnapshotStatus.ERROR,
        "fra1-a",
    )
    assert FRANKFURT_REFUSED in failed.fault_message
    assert not Operation.objects.filter(snapshot=failed).exists()
    assert [m.to for m in mailoutbox] == [["owner@example.com"]]
    assert FRANKFURT_REFUSED in mailoutbox[0].body
    schedule.refresh_from_db()
    assert schedule.next_run_at is not None  # tried again next time: the policy may be widened
