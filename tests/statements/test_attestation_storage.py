"""The residency attestation lists snapshots, backups and project images as it lists servers: where
they were over time (from their usage, else their record) and whether the policy then allowed it."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import timedelta

from portal.catalog.models import Image
from portal.compute.models import Snapshot, SnapshotKind, SnapshotStatus
from portal.statements.attestation import attestation_build
from tests.statements.helpers import make_segment
from tests.statements.test_attestation import _url, set_policy


def _snapshot(project, zone, name, kind, *, created, deleted=None, status=SnapshotStatus.AVAILABLE, **extra):
    snapshot = Snapshot.objects.create(
        project=project,
        zone=zone,
        name=name,
        kind=kind,
        status=status,
        backend_id=extra.pop("backend_id", f"snap-{name}"),
        deleted_at=deleted,
        **extra,
    )
    Snapshot.objects.filter(pk=snapshot.pk).update(created_at=created)
    return snapshot


def _billed(snapshot, *, start, end=None):
    """The snapshot's usage: billed on the snapshot meter from the cloud's "available"."""
    make_segment(
        snapshot.project,
        snapshot.zone,
        start=start,
        end=end,
        meter="snapshot",
        quantity="20",
        resource_type="snapshot",
        resource_id=snapshot.pk,
        name=snapshot.name,
        vcpus=0,
        ram=0,
    )


def _storage(project, catalog, start):
    """A server snapshot that is an image (Frankfurt), a backup taken in Ashburn, a volume snapshot
    never billed (its size unknown), a backup refused before it reached the cloud, and an image the
    operator uploaded for the project in Ashburn."""
    golden = _snapshot(
        project, catalog["fra1-a"], "golden", SnapshotKind.SERVER, created=start - timedelta(days=3)
    )
    golden.image = Image.objects.create(
        name="golden", os_family="debian", version="Server snapshot of web", project=project,
        backend_refs={"fra1-a": "img-golden"},
    )  # fmt: skip
    golden.save()
    _billed(golden, start=start - timedelta(days=3))
    backup = _snapshot(
        project, catalog["iad1-a"], "db-backup-1", SnapshotKind.BACKUP, created=start + timedelta(days=5)
    )
    _billed(backup, start=start + timedelta(days=5), end=start + timedelta(days=6))
    _snapshot(
        project,
        catalog["ams1-a"],
        "data-before",
        SnapshotKind.VOLUME,
        created=start + timedelta(days=1),
        deleted=start + timedelta(days=3),
        status=SnapshotStatus.DELETED,
    )
    _snapshot(
        project,
        catalog["iad1-a"],
        "db-backup-refused",
        SnapshotKind.BACKUP,
        created=start + timedelta(days=7),
        status=SnapshotStatus.ERROR,
        backend_id="",
        fault_message="Blocked by organization policy",
    )
    uploaded = Image.objects.create(
        name="Customer OS", os_family="debian", version="1", project=project, backend_refs={"iad1-a": "img-7"}
    )
    return golden, backup, uploaded


def test_snapshots_backups_and_images_are_placed_and_judged(org, project, owner, catalog, last_month):
    start, end = last_month
    set_policy(owner, org, start - timedelta(days=30))  # EU only
    _storage(project, catalog, start)

    attestation = attestation_build(organization=org, start=start, end=end)
    found = {
        r.name: (r.type_label, r.source, [(p.zone.code, p.start, p.end, p.allowed) for p in r.placements])
        for r in attestation.resources
    }
    assert found == {
        "golden": ("Server snapshot", "usage", [("fra1-a", start, end, True)]),
        "db-backup-1": (
            "Backup",
            "usage",
            [("iad1-a", start + timedelta(days=5), start + timedelta(days=6), False)],
        ),
        "data-before": (
            "Volume snapshot",
            "record",
            [("ams1-a", start + timedelta(days=1), start + timedelta(days=3), True)],
        ),
        "Customer OS": ("Image", "catalog", [("iad1-a", start, end, False)]),
    }  # the refused backup never existed in the cloud: not listed
    assert [r.name for r in attestation.resources if r.is_image] == ["golden"]
    assert not attestation.compliant and attestation.noncompliant_count == 2
    ashburn = next(r for r in attestation.resources if r.name == "db-backup-1").placements[0]
    assert "Ashburn is in United States jurisdiction (allowed: European Union)" in ashburn.reasons


def test_the_page_and_the_csv_list_them(org, project, owner, catalog, last_month, client_as):
    start, end = last_month
    set_policy(owner, org, start - timedelta(days=30))
    golden, backup, uploaded = _storage(project, catalog, start)
    client = client_as(owner)
    query = {"from": start.date().isoformat(), "to": (end - timedelta(days=1)).date().isoformat()}

    text = client.get(_url(org, project, **query, format="csv")).content.decode()
    body, last = text[: text.rstrip("\n").rfind("\n") + 1], text.rstrip("\n").rsplit("\n", 1)[1]
    assert next(csv.reader([last])) == [
        "SHA-256 of all lines above",
        hashlib.sha256(body.encode()).hexdigest(),
    ]
    rows = list(csv.reader(io.StringIO(body)))
    header = rows.index(next(r for r in rows if r[:2] == ["Project", "Resource type"]))
    placed = {(r[1], r[2], r[3], r[4], r[5], r[6], r[10], r[13]) for r in rows[header + 1 :]}
    assert placed == {
        ("backup", str(backup.pk), "db-backup-1", "iad1-a", "Ashburn", "United States", "NOT ALLOWED", "usage"),
        ("image", f"image-{uploaded.pk}", "Customer OS", "iad1-a", "Ashburn", "United States", "NOT ALLOWED",
         "catalog"),
        ("server_snapshot", str(golden.pk), "golden", "fra1-a", "Frankfurt", "European Union", "allowed", "usage"),
        ("volume_snapshot", str(Snapshot.objects.get(name="data-before").pk), "data-before", "ams1-a",
         "Amsterdam", "European Union", "allowed", "record"),
    }  # fmt: skip

    page = client.get(_url(org, project, **query)).content.decode()
    assert "Servers, volumes, snapshots and images" in page
    for words in ("db-backup-1", "Volume snapshot", "Customer OS", "new servers can boot from it"):
        assert words in page
    assert "db-backup-refused" not in page
    assert hashlib.sha256(body.encode()).hexdigest() in page
