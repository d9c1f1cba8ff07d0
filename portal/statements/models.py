"""Monthly statements: what an organization used and owes for one calendar month.

A statement is built from the month's usage (`selectors.statement_build`) and stored only when the
month is closed (`services.statement_close`): its lines, its total and a SHA-256 hash of its
canonical CSV are written once, in one transaction, and never change afterwards — `save()`,
`delete()` and queryset `update()`/`delete()` refuse, like audit events. The current month is
never stored: pages compute it on the fly and label it "not final".
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from portal.metering.models import Meter

STORAGE_METERS = frozenset({Meter.DISK, Meter.VOLUME, Meter.SNAPSHOT})


class StatementClosedError(TypeError):
    """A closed statement (or one of its lines) was about to change."""


class StatementStatus(models.TextChoices):
    OPEN = "open", "Open"  # only while statement_close is writing it
    CLOSED = "closed", "Closed"


class StatementQuerySet(models.QuerySet["Statement"]):
    def update(self, **kwargs) -> int:
        if self.filter(status=StatementStatus.CLOSED).exists():
            raise StatementClosedError("A closed statement never changes.")
        return super().update(**kwargs)

    def delete(self):
        if self.filter(status=StatementStatus.CLOSED).exists():
            raise StatementClosedError("A closed statement is never deleted.")
        return super().delete()


class Statement(models.Model):
    organization = models.ForeignKey(
        "tenancy.Organization", on_delete=models.PROTECT, related_name="statements"
    )
    # The organization's name when the statement was closed: part of the hashed content.
    organization_name = models.CharField(max_length=80)
    month = models.DateField(help_text="The first day of the month billed.")
    status = models.CharField(max_length=8, choices=StatementStatus.choices, default=StatementStatus.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    total = models.DecimalField(
        max_digits=14, decimal_places=2, default=Decimal(0), help_text="Sum of the lines, to the cent."
    )
    currency = models.CharField(max_length=3)
    content_hash = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the statement's CSV (without its hash line)."
    )

    objects = StatementQuerySet.as_manager()

    class Meta:
        ordering = ["-month"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "month"], name="statement_one_per_month"),
        ]

    def __str__(self) -> str:
        return f"{self.organization} {self.month:%Y-%m}"

    def save(self, *args, **kwargs) -> None:
        if self.status == StatementStatus.CLOSED or (
            self.pk is not None
            and Statement.objects.filter(pk=self.pk, status=StatementStatus.CLOSED).exists()
        ):
            raise StatementClosedError("A statement is closed only by statement_close, and never changes.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if Statement.objects.filter(pk=self.pk, status=StatementStatus.CLOSED).exists():
            raise StatementClosedError("A closed statement is never deleted.")
        return super().delete(*args, **kwargs)

    @property
    def is_final(self) -> bool:
        return self.status == StatementStatus.CLOSED

    def hash_matches(self) -> bool:
        """Does the stored content still hash to the hash written when it was closed?"""
        from portal.statements.documents import sha256_hex, statement_csv_body

        return bool(self.content_hash) and sha256_hex(statement_csv_body(self)) == self.content_hash


class StatementLineQuerySet(models.QuerySet["StatementLine"]):
    def _touches_closed(self) -> bool:
        return self.filter(statement__status=StatementStatus.CLOSED).exists()

    def update(self, **kwargs) -> int:
        if self._touches_closed():
            raise StatementClosedError("A closed statement's lines never change.")
        return super().update(**kwargs)

    def delete(self):
        if self._touches_closed():
            raise StatementClosedError("A closed statement's lines are never deleted.")
        return super().delete()

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        ids = {line.statement_id for line in objs}
        if Statement.objects.filter(pk__in=ids, status=StatementStatus.CLOSED).exists():
            raise StatementClosedError("Lines can't be added to a closed statement.")
        return super().bulk_create(objs, *args, **kwargs)


class StatementLine(models.Model):
    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="lines")
    project = models.ForeignKey("tenancy.Project", on_delete=models.PROTECT, related_name="+")
    # The project's name when the statement was closed: a later rename doesn't rewrite it.
    project_name = models.CharField(max_length=80)
    meter = models.CharField(max_length=16, choices=Meter.choices)
    quantity_hours = models.DecimalField(
        max_digits=16, decimal_places=4, help_text="Unit-hours (GiB-hours for disks and volumes)."
    )
    cost = models.DecimalField(max_digits=16, decimal_places=6)

    objects = StatementLineQuerySet.as_manager()

    class Meta:
        ordering = ["project_name", "project_id", "meter"]
        constraints = [
            models.UniqueConstraint(fields=["statement", "project", "meter"], name="statement_line_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.project_name} {self.meter}"

    def save(self, *args, **kwargs) -> None:
        if Statement.objects.filter(pk=self.statement_id, status=StatementStatus.CLOSED).exists():
            raise StatementClosedError("A closed statement's lines never change.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if Statement.objects.filter(pk=self.statement_id, status=StatementStatus.CLOSED).exists():
            raise StatementClosedError("A closed statement's lines are never deleted.")
        return super().delete(*args, **kwargs)

    @property
    def meter_label(self) -> str:
        return Meter(self.meter).label

    @property
    def unit(self) -> str:
        return meter_unit(self.meter)


def meter_unit(meter: str) -> str:
    return "GiB-hours" if meter in STORAGE_METERS else "hours"
