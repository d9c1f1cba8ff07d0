from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.conf import settings
from django.utils import timezone

from portal.budgets.models import BUDGET_MAX_AMOUNT, BUDGET_MIN_AMOUNT, GuardMode
from portal.compute.models import Instance, InstanceStatus

LEASE_MAX_DAYS = 366


class BudgetForm(forms.Form):
    amount = forms.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=BUDGET_MIN_AMOUNT,
        max_value=BUDGET_MAX_AMOUNT,
        error_messages={
            "required": "Enter the monthly amount.",
            "invalid": "Enter an amount such as 500 or 1250.50.",
            "min_value": "The budget must be more than zero; remove it instead if you want none.",
            "max_value": "That is more than this portal can track; enter a smaller amount.",
            "max_decimal_places": "Use at most two decimals (cents).",
            "max_digits": "That is more than this portal can track; enter a smaller amount.",
        },
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    guard = forms.ChoiceField(
        choices=GuardMode.choices,
        initial=GuardMode.OFF,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose what happens at launch.",
            "invalid_choice": "Choose one of the options listed.",
        },
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = f"Monthly budget ({settings.PORTAL_CURRENCY})"


def lease_end(day: date) -> datetime:
    """A lease set for a day runs through that day: it ends at the next midnight, UTC."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


class LeaseForm(forms.Form):
    instance = forms.ModelChoiceField(
        Instance.objects.none(),
        error_messages={
            "required": "Choose a server.",
            "invalid_choice": "Choose one of the running servers listed.",
        },
    )
    stop_on = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a date such as 2030-06-30."},
    )
    action = forms.ChoiceField(choices=[("set", "Set"), ("clear", "Clear")], required=False)

    def __init__(self, *args, project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["instance"].queryset = Instance.objects.filter(
            project=project, status=InstanceStatus.RUNNING
        )

    @staticmethod
    def date_range() -> tuple[date, date]:
        today = timezone.now().date()
        return today, today + timedelta(days=LEASE_MAX_DAYS)

    def clean(self):
        data = super().clean()
        if data.get("action") == "clear":
            return data
        data["action"] = "set"
        day = data.get("stop_on")
        if day is None:
            if "stop_on" not in self.errors:
                self.add_error("stop_on", "Choose the last day the server should run.")
            return data
        first, last = self.date_range()
        if day < first:
            self.add_error("stop_on", "Choose today or a later day.")
        elif day > last:
            self.add_error("stop_on", f"Choose a day within a year (by {last:%Y-%m-%d}).")
        else:
            data["stop_at"] = lease_end(day)
        return data
