from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django import forms

MAX_PERIOD_DAYS = 400


def last_calendar_month(today: date) -> tuple[date, date]:
    end = today.replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


class PeriodForm(forms.Form):
    """`?from=YYYY-MM-DD&to=YYYY-MM-DD` (both days included, UTC); neither means last month."""

    def __init__(self, data=None, *, today: date) -> None:
        super().__init__(data)
        self.today = today
        widget = {"type": "date", "max": today.isoformat()}
        # "from" is a Python keyword, so the fields are added here rather than declared.
        self.fields["from"] = forms.DateField(
            required=False, label="From", widget=forms.DateInput(attrs=widget, format="%Y-%m-%d")
        )
        self.fields["to"] = forms.DateField(
            required=False, label="To (included)", widget=forms.DateInput(attrs=widget, format="%Y-%m-%d")
        )
        first, last = last_calendar_month(today)
        self.initial = {"from": first, "to": last}

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        first, last = data.get("from"), data.get("to")
        if first is None and last is None:
            first, last = last_calendar_month(self.today)
        elif first is None or last is None:
            raise forms.ValidationError("Give both dates, or neither for last month.")
        if first > last:
            raise forms.ValidationError("The period starts after it ends.")
        if last > self.today:
            raise forms.ValidationError("The period can't end after today.")
        if (last - first).days + 1 > MAX_PERIOD_DAYS:
            raise forms.ValidationError(f"A period can be at most {MAX_PERIOD_DAYS} days long.")
        data["from"], data["to"] = first, last
        return data

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) as aware UTC datetimes: midnight of `from` to midnight after `to`."""
        first, last = self.cleaned_data["from"], self.cleaned_data["to"]
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        return start, end
