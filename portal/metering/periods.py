"""The period a usage page, its graphs and its CSV cover: a preset (7 d, 30 d, 90 d, 12 months) or
custom dates, read from the query string. Days are UTC calendar days and both ends are included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from django import forms

MAX_DAYS = 400
DEFAULT = "30d"
PRESETS: dict[str, tuple[str, str]] = {
    "7d": ("7 days", "Last 7 days"),
    "30d": ("30 days", "Last 30 days"),
    "90d": ("90 days", "Last 90 days"),
    "12m": ("12 months", "Last 12 months"),
}
CUSTOM = "custom"


@dataclass(frozen=True)
class Period:
    key: str
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """From the first day's midnight to the midnight after the last day, UTC."""
        start = datetime.combine(self.start, datetime.min.time(), tzinfo=UTC)
        return start, start + timedelta(days=self.days)

    @property
    def label(self) -> str:
        if self.key in PRESETS:
            return PRESETS[self.key][1]
        return f"{self.start:%d %b %Y} to {self.end:%d %b %Y}"

    @property
    def query(self) -> str:
        """The query string that selects this period again (for the JSON and CSV links)."""
        if self.key == CUSTOM:
            return urlencode({"period": CUSTOM, "start": self.start.isoformat(), "end": self.end.isoformat()})
        return urlencode({"period": self.key})

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "label": self.label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
        }


def preset_period(key: str, today: date) -> Period:
    if key == "12m":
        try:
            year_ago = today.replace(year=today.year - 1)
        except ValueError:  # 29 February
            year_ago = today.replace(year=today.year - 1, day=28)
        return Period(key, year_ago + timedelta(days=1), today)
    return Period(key, today - timedelta(days=int(key.removesuffix("d")) - 1), today)


class PeriodForm(forms.Form):
    period = forms.ChoiceField(
        choices=[*((key, short) for key, (short, _) in PRESETS.items()), (CUSTOM, "Custom")],
        required=False,
    )
    start = forms.DateField(required=False, input_formats=["%Y-%m-%d"], label="From")
    end = forms.DateField(required=False, input_formats=["%Y-%m-%d"], label="To")

    def __init__(self, data, *, today: date) -> None:
        super().__init__(data)
        self.today = today
        for name in ("start", "end"):
            self.fields[name].widget = forms.DateInput(
                attrs={"type": "date", "max": today.isoformat()}, format="%Y-%m-%d"
            )
        self.fields["period"].error_messages["invalid_choice"] = (
            "Choose 7 days, 30 days, 90 days, 12 months or custom dates."
        )
        for name in ("start", "end"):
            self.fields[name].error_messages["invalid"] = "Enter a date as YYYY-MM-DD."

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        key = data.get("period") or (CUSTOM if data.get("start") or data.get("end") else DEFAULT)
        data["period"] = key
        if key != CUSTOM:
            return data
        start, end = data.get("start"), data.get("end")
        if start is None or end is None:
            raise forms.ValidationError("Custom dates need both a start and an end date.")
        if start > end:
            raise forms.ValidationError("The start date must be on or before the end date.")
        if end > self.today:
            raise forms.ValidationError(f"The end date can't be after today ({self.today.isoformat()}).")
        if (end - start).days + 1 > MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        return data

    @property
    def chosen(self) -> Period:
        """The chosen period; only after is_valid()."""
        data = self.cleaned_data
        if data["period"] == CUSTOM:
            return Period(CUSTOM, data["start"], data["end"])
        return preset_period(data["period"], self.today)

    def error_message(self) -> str:
        return " ".join(str(e) for errors in self.errors.values() for e in errors)
