"""Money guard rails per project: a monthly budget with alerts and a launch guard, weekly nudges
about forgotten servers, and leases that stop a server at a date.

Alerts and nudges are claimed by inserting a row that a unique constraint allows once (per
project and month and threshold, per project and week): a second worker's insert fails and it
sends nothing.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models


class GuardMode(models.TextChoices):
    OFF = "off", "Off"
    WARN = "warn", "Warn"
    APPROVAL = "approval", "Require an owner"
    BLOCK = "block", "Block"


GUARD_HELP = {
    GuardMode.OFF: "Launches are not checked against the budget (alerts are still sent).",
    GuardMode.WARN: "A launch that would take the forecast over the budget shows a warning and goes ahead.",
    GuardMode.APPROVAL: "Only an owner may launch what would take the forecast over the budget.",
    GuardMode.BLOCK: "Nobody may launch what would take the forecast over the budget.",
}


# What a budget may be: cents, at least one, at most what amount's 12 digits hold. The budget
# form, budget_set and the API's schema read these.
BUDGET_MIN_AMOUNT = Decimal("0.01")
BUDGET_MAX_AMOUNT = Decimal("9999999999.99")


class Budget(models.Model):
    project = models.OneToOneField("tenancy.Project", on_delete=models.CASCADE, related_name="budget")
    amount = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        validators=[MinValueValidator(BUDGET_MIN_AMOUNT)],
        help_text="Per calendar month, in settings.PORTAL_CURRENCY.",
    )
    guard = models.CharField(max_length=16, choices=GuardMode.choices, default=GuardMode.OFF)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.amount} {settings.PORTAL_CURRENCY} a month for {self.project}"


class AlertKind(models.TextChoices):
    SPENT_50 = "spent_50", "50 % spent"
    SPENT_80 = "spent_80", "80 % spent"
    SPENT_100 = "spent_100", "Budget used up"
    FORECAST_OVER = "forecast_over", "Forecast over budget"


# Thresholds of actual spend, lowest first.
SPENT_THRESHOLDS: tuple[tuple[AlertKind, int], ...] = (
    (AlertKind.SPENT_50, 50),
    (AlertKind.SPENT_80, 80),
    (AlertKind.SPENT_100, 100),
)


class BudgetAlert(models.Model):
    """An alert that was sent: one per project, month and kind, ever."""

    project = models.ForeignKey("tenancy.Project", on_delete=models.CASCADE, related_name="budget_alerts")
    month = models.DateField(help_text="The first day of the month the alert is about.")
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    sent_at = models.DateTimeField()
    # What the numbers were when it was sent, for the budget page.
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    spent = models.DecimalField(max_digits=14, decimal_places=2)
    forecast = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["-sent_at", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["project", "month", "kind"], name="budget_alert_once_per_month")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.project} in {self.month:%Y-%m}"


class NudgeDigest(models.Model):
    """The weekly "forgotten servers" e-mail of a project: at most one per ISO week."""

    project = models.ForeignKey("tenancy.Project", on_delete=models.CASCADE, related_name="nudge_digests")
    week = models.DateField(help_text="The Monday of the ISO week.")
    sent_at = models.DateTimeField()
    instance_names = models.JSONField(default=list)
    monthly_saving = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["-week"]
        constraints = [models.UniqueConstraint(fields=["project", "week"], name="nudge_digest_once_per_week")]

    def __str__(self) -> str:
        return f"Nudge for {self.project}, week of {self.week}"


class InstanceLease(models.Model):
    """Stop this server at `stop_at`, with a reminder e-mail a day before."""

    instance = models.OneToOneField("compute.Instance", on_delete=models.CASCADE, related_name="lease")
    stop_at = models.DateTimeField()
    reminded_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["stop_at"]
        indexes = [models.Index(fields=["stop_at"])]

    def __str__(self) -> str:
        return f"{self.instance} stops at {self.stop_at:%Y-%m-%d %H:%M}"

    @property
    def last_day(self) -> date:
        """The last day the server runs (a lease set for a day ends at the next midnight)."""
        return (self.stop_at - timedelta(microseconds=1)).date()
