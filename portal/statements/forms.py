from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django import forms

MAX_PERIOD_DAYS = 400


def last_calendar_month(today: date) -> tuple[date, date]:
    end = today.replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


def month_so_far(today: date) -> tuple[date, date]:
    """The default period: this month up to today. Last month was empty for a new organization,
    which then read "Compliant · nothing existed" about a month before it did."""
    return today.replace(day=1), today


def _month_end(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def period_label(first: date, last: date, today: date) -> str:
    """ "December 2026 so far", "November 2026", or the two days."""
    if first.day == 1 and last == today and (first.year, first.month) == (today.year, today.month):
        return f"{first:%B %Y} so far"
    if first.day == 1 and last == _month_end(first):
        return f"{first:%B %Y}"
    return f"{first.day} {first:%b %Y} \N{EN DASH} {last.day} {last:%b %Y}"


def recent_months(today: date, since: date, count: int = 12) -> list[tuple[str, date, date]]:
    """(label, first, last) for this month so far and the months before it, back to `since`'s."""
    months = []
    first = today.replace(day=1)
    while len(months) < count and first >= since.replace(day=1):
        last = min(_month_end(first), today)
        months.append((period_label(first, last, today), first, last))
        first = (first - timedelta(days=1)).replace(day=1)
    return months


class PeriodForm(forms.Form):
    """`?from=YYYY-MM-DD&to=YYYY-MM-DD` (both days included, UTC); neither means this month so far."""

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
        first, last = month_so_far(today)
        self.initial = {"from": first, "to": last}

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        first, last = data.get("from"), data.get("to")
        if first is None and last is None:
            first, last = month_so_far(self.today)
        elif first is None or last is None:
            raise forms.ValidationError("Give both dates, or neither for this month so far.")
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
