"""Snapshots and backups: a server's disk kept as an image new servers boot from, or a volume's
content, in the zone where it was taken. Every change goes through an operation
(`Operation.snapshot`, compute/operations/snapshots.py); a backup is a server snapshot that a
`BackupSchedule` took."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse


class SnapshotKind(models.TextChoices):
    SERVER = "server", "Server snapshot"
    VOLUME = "volume", "Volume snapshot"
    BACKUP = "backup", "Backup"


class SnapshotStatus(models.TextChoices):
    CREATING = "creating", "Creating"
    AVAILABLE = "available", "Available"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    ERROR = "error", "Error"


SNAPSHOT_TRANSITIONAL = frozenset({SnapshotStatus.CREATING, SnapshotStatus.DELETING})
# A server snapshot or a backup is an image of the server's disk; a volume snapshot is not.
BOOTABLE_KINDS = frozenset({SnapshotKind.SERVER, SnapshotKind.BACKUP})


class SnapshotQuerySet(models.QuerySet["Snapshot"]):
    def existing(self) -> SnapshotQuerySet:
        return self.exclude(status=SnapshotStatus.DELETED)


class Snapshot(models.Model):
    # The UUID is the idempotency key in the cloud: a retried create adopts the first snapshot.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("tenancy.Project", on_delete=models.PROTECT, related_name="snapshots")
    zone = models.ForeignKey("catalog.Zone", on_delete=models.PROTECT, related_name="snapshots")
    name = models.CharField(max_length=63)
    kind = models.CharField(max_length=8, choices=SnapshotKind.choices)
    source_instance = models.ForeignKey(
        "compute.Instance", null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots"
    )
    source_volume = models.ForeignKey(
        "compute.Volume", null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots"
    )
    # A copy in another region: the snapshot (an image) it was copied from; the copy is a snapshot of
    # its own, in its own zone, billed there (compute/image_copy.py).
    copied_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="copies"
    )
    # Only for backups: the schedule that took it (its `keep` decides when it goes).
    schedule = models.ForeignKey(
        "compute.BackupSchedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="backups"
    )
    status = models.CharField(
        max_length=16, choices=SnapshotStatus.choices, default=SnapshotStatus.CREATING, db_index=True
    )
    backend_id = models.CharField(max_length=128, blank=True, help_text="The snapshot's id in the cloud.")
    image_ref = models.CharField(
        max_length=128, blank=True, help_text="What the cloud boots a new server from (server snapshots)."
    )
    # The image new servers launch from (server snapshots and backups, once available).
    image = models.OneToOneField(
        "catalog.Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshot"
    )
    size_gib = models.PositiveIntegerField(default=0, help_text="What it occupies (billed).")
    min_disk_gib = models.PositiveIntegerField(default=0)
    fault_message = models.CharField(
        max_length=500, blank=True, help_text="Why it failed, in the customer's words."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = SnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "status"]), models.Index(fields=["schedule", "status"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind="volume", source_instance__isnull=True)
                | models.Q(~models.Q(kind="volume"), source_volume__isnull=True),
                name="snapshot_source_matches_kind",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return (
            reverse(
                "compute:snapshots",
                kwargs={"org_slug": self.project.organization.slug, "project_slug": self.project.slug},
            )
            + f"#snapshot-{self.pk}"
        )

    @property
    def is_transitional(self) -> bool:
        return self.status in SNAPSHOT_TRANSITIONAL

    @property
    def is_bootable(self) -> bool:
        return self.kind in BOOTABLE_KINDS

    @property
    def source_name(self) -> str:
        source = self.source_instance if self.kind in BOOTABLE_KINDS else self.source_volume
        return source.name if source else "(deleted)"

    @property
    def is_copy(self) -> bool:
        return self.copied_from_id is not None


class BackupFrequency(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"


WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
KEEP_MAX = 30


class BackupSchedule(models.Model):
    """Automatic backups of one server: daily or weekly at an hour (UTC), the newest `keep` kept.

    `next_run_at` is when the next backup is due; the beat task claims a due schedule by moving it
    forward with a conditional UPDATE (`claim`), so two workers never take the same backup."""

    instance = models.OneToOneField(
        "compute.Instance", on_delete=models.CASCADE, related_name="backup_schedule"
    )
    frequency = models.CharField(max_length=8, choices=BackupFrequency.choices, default=BackupFrequency.DAILY)
    hour = models.PositiveSmallIntegerField(default=3, help_text="0-23, UTC.")
    weekday = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="0 = Monday … 6 = Sunday; weekly backups only."
    )
    keep = models.PositiveSmallIntegerField(default=7, help_text=f"1-{KEEP_MAX} backups kept.")
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(hour__lte=23), name="backup_hour_in_day"),
            models.CheckConstraint(
                condition=models.Q(keep__gte=1, keep__lte=KEEP_MAX), name="backup_keep_range"
            ),
        ]

    def __str__(self) -> str:
        return f"Backups of {self.instance}"

    def next_after(self, moment: datetime) -> datetime:
        """The first run strictly after `moment` (aware UTC)."""
        at = moment.astimezone(UTC).replace(hour=self.hour, minute=0, second=0, microsecond=0)
        if self.frequency == BackupFrequency.WEEKLY:
            at += timedelta(days=((self.weekday or 0) - at.weekday()) % 7)
            step = timedelta(days=7)
        else:
            step = timedelta(days=1)
        while at <= moment:
            at += step
        return at

    @property
    def summary(self) -> str:
        when = f"{self.hour:02d}:00 UTC"
        if self.frequency == BackupFrequency.WEEKLY and self.weekday is not None:
            when = f"{WEEKDAYS[self.weekday]}s at {when}"
        else:
            when = f"every day at {when}"
        return f"{when}, the newest {self.keep} kept"
