"""What things cost, as it happens.

A `UsageSegment` is one billable thing costing one unit price over an interval: opened when the
thing starts to cost, closed when it stops, written in the same transaction as the state change
that causes it. The unit price is copied in, so a later price change never rewrites history.
`UsageRollup` holds hourly and daily totals computed from segments by an idempotent beat task;
pages and graphs read rollups (plus the still-open current hour computed on the fly).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class Meter(models.TextChoices):
    COMPUTE = "compute", "Compute"  # a running server: vCPUs and RAM, per hour
    LICENSE = "license", "Licences"  # an image's licence while the server runs, per hour
    DISK = "disk", "Server disks"  # a server's root disk while it exists (running or stopped), GiB-hours
    VOLUME = "volume", "Volumes"  # a volume while it exists, GiB-hours
    SNAPSHOT = "snapshot", "Snapshots"  # snapshots, backups and the images they are, GiB-hours


class ResourceType(models.TextChoices):
    INSTANCE = "instance", "Server"
    VOLUME = "volume", "Volume"
    SNAPSHOT = "snapshot", "Snapshot"


class UsageSegment(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.PROTECT, related_name="+")
    project = models.ForeignKey("tenancy.Project", on_delete=models.PROTECT, related_name="usage_segments")
    resource_type = models.CharField(max_length=16, choices=ResourceType.choices)
    resource_id = models.UUIDField(db_index=True)
    resource_name = models.CharField(max_length=63)
    zone = models.ForeignKey("catalog.Zone", on_delete=models.PROTECT, related_name="+")
    meter = models.CharField(max_length=16, choices=Meter.choices)
    quantity = models.DecimalField(
        max_digits=12, decimal_places=3, help_text="Units billed per hour (1, or GiB)."
    )
    unit_price = models.DecimalField(
        max_digits=12, decimal_places=6, help_text="Per unit and hour, when opened."
    )
    vcpus = models.PositiveIntegerField(default=0)
    ram_gib = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at"]
        indexes = [
            models.Index(fields=["project", "started_at"]),
            # Usage pages read the segments still open or ended inside a window (today's, and a
            # lagging rollup's) per project or organization: without these they scan all history.
            models.Index(fields=["organization", "ended_at"]),
            models.Index(fields=["project", "ended_at"]),
            models.Index(fields=["ended_at"]),
            models.Index(
                fields=["resource_id", "meter"],
                condition=models.Q(ended_at__isnull=True),
                name="open_segments",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.resource_name} {self.meter} from {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def hourly_cost(self) -> Decimal:
        return self.quantity * self.unit_price


class Granularity(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class UsageRollup(models.Model):
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey("tenancy.Project", on_delete=models.CASCADE, related_name="usage_rollups")
    zone = models.ForeignKey("catalog.Zone", on_delete=models.PROTECT, related_name="+")
    meter = models.CharField(max_length=16, choices=Meter.choices)
    granularity = models.CharField(max_length=8, choices=Granularity.choices)
    period_start = models.DateTimeField()
    quantity_hours = models.DecimalField(
        max_digits=16, decimal_places=4, help_text="Unit-hours (GiB-hours for disks)."
    )
    vcpu_hours = models.DecimalField(max_digits=16, decimal_places=4, default=Decimal(0))
    ram_gib_hours = models.DecimalField(max_digits=16, decimal_places=4, default=Decimal(0))
    cost = models.DecimalField(max_digits=16, decimal_places=6)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "zone", "meter", "granularity", "period_start"],
                name="rollup_unique_period",
            )
        ]
        indexes = [
            models.Index(fields=["project", "granularity", "period_start"]),
            models.Index(fields=["organization", "granularity", "period_start"]),
        ]

    def __str__(self) -> str:
        return f"{self.meter} {self.granularity} {self.period_start:%Y-%m-%d %H:00}"


class RollupCursor(models.Model):
    """How far hourly rollups are complete (one row): the next hour to roll up."""

    next_hour = models.DateTimeField()

    def __str__(self) -> str:
        return f"next hour {self.next_hour:%Y-%m-%d %H:00}"
