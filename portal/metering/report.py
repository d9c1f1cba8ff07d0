"""One period's usage of a project or an organization, as the page's tables, the graphs' JSON and
the CSV all show it: the same rounded figures everywhere, every total the sum of its rows
(`portal.lib.money`).

Built from `daily_usage` (daily rollups plus today on the fly): a constant number of queries,
however many servers the scope has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

from portal.lib.money import apportion, money
from portal.metering.models import Meter
from portal.metering.periods import Period
from portal.metering.selectors import DayUsage, daily_usage

HUNDREDTH = Decimal("0.01")

__all__ = ["UsageReport", "hours", "money", "usage_report"]


def hours(value) -> Decimal:
    return Decimal(value or 0).quantize(HUNDREDTH, ROUND_HALF_UP)


@dataclass(frozen=True)
class ReportDay:
    day: date
    cost_by_meter: dict[str, Decimal]  # to the cent, each meter's column adding up to its total
    cost: Decimal  # the sum of the day's meters as shown
    exact: DayUsage
    vcpu_hours: Decimal
    ram_gib_hours: Decimal
    storage_gib_hours: Decimal

    @property
    def meter_costs(self) -> list[Decimal]:
        return list(self.cost_by_meter.values())


@dataclass
class UsageReport:
    period: Period
    currency: str
    meters: list[tuple[str, str]]  # (meter, label) that cost something in the period, in Meter order
    days: list[ReportDay] = field(default_factory=list)

    @property
    def total_cost(self) -> Decimal:
        # The exact total rounded once: the figure every table of the page adds up to.
        return money(sum((d.exact.cost for d in self.days), Decimal(0)))

    @property
    def average_cost(self) -> Decimal:
        return money(self.total_cost / len(self.days)) if self.days else Decimal(0)

    @property
    def total_vcpu_hours(self) -> Decimal:
        return hours(sum((d.exact.vcpu_hours for d in self.days), Decimal(0)))

    @property
    def total_ram_gib_hours(self) -> Decimal:
        return hours(sum((d.exact.ram_gib_hours for d in self.days), Decimal(0)))

    @property
    def total_storage_gib_hours(self) -> Decimal:
        return hours(sum((d.exact.storage_gib_hours for d in self.days), Decimal(0)))

    @property
    def cost_by_meter(self) -> dict[str, Decimal]:
        return {m: sum((d.cost_by_meter[m] for d in self.days), Decimal(0)) for m, _ in self.meters}

    @property
    def is_empty(self) -> bool:
        return not self.meters and not self.total_storage_gib_hours

    def as_json(self) -> dict:
        """What static/js/usage-charts.js draws. Figures are decimal strings, as in the tables."""
        return {
            "period": self.period.as_dict(),
            "currency": self.currency,
            "days": [d.day.isoformat() for d in self.days],
            "meters": [{"key": m, "label": label} for m, label in self.meters],
            "cost_by_meter": {m: [str(d.cost_by_meter[m]) for d in self.days] for m, _ in self.meters},
            "cost": [str(d.cost) for d in self.days],
            "vcpu_hours": [str(d.vcpu_hours) for d in self.days],
            "ram_gib_hours": [str(d.ram_gib_hours) for d in self.days],
            "storage_gib_hours": [str(d.storage_gib_hours) for d in self.days],
            "totals": {
                "cost": str(self.total_cost),
                "cost_by_meter": {m: str(v) for m, v in self.cost_by_meter.items()},
                "vcpu_hours": str(self.total_vcpu_hours),
                "ram_gib_hours": str(self.total_ram_gib_hours),
                "storage_gib_hours": str(self.total_storage_gib_hours),
            },
        }

    def csv_header(self) -> list[str]:
        return [
            "date",
            *(f"{m}_cost_{self.currency.lower()}" for m, _ in self.meters),
            f"total_cost_{self.currency.lower()}",
            "vcpu_hours",
            "ram_gib_hours",
            "storage_gib_hours",
        ]

    def csv_rows(self) -> list[list[str]]:
        return [
            [
                d.day.isoformat(),
                *(str(c) for c in d.meter_costs),
                str(d.cost),
                str(d.vcpu_hours),
                str(d.ram_gib_hours),
                str(d.storage_gib_hours),
            ]
            for d in self.days
        ]


def usage_report(period: Period, *, now: datetime | None = None, **scope) -> UsageReport:
    """The report for `period` and a scope (project=… or organization=…)."""
    raw: list[DayUsage] = daily_usage(start=period.start, end=period.end, now=now, **scope)
    used = {m for d in raw for m, c in d.cost_by_meter.items() if c}
    meters = [(m.value, m.label) for m in Meter if m.value in used]
    report = UsageReport(period=period, currency=settings.PORTAL_CURRENCY, meters=meters)
    # The total is split over the meters, then each meter's share over the days: the footer of
    # the cost table, its rows and the headline figure all add up.
    exact_by_meter = [sum((d.cost_by_meter.get(m, Decimal(0)) for d in raw), Decimal(0)) for m, _ in meters]
    meter_totals = apportion(exact_by_meter, money(sum((d.cost for d in raw), Decimal(0))))
    columns = {
        m: apportion([d.cost_by_meter.get(m, Decimal(0)) for d in raw], total)
        for (m, _), total in zip(meters, meter_totals, strict=True)
    }
    for i, d in enumerate(raw):
        by_meter = {m: columns[m][i] for m, _ in meters}
        report.days.append(
            ReportDay(
                day=d.day,
                cost_by_meter=by_meter,
                cost=sum(by_meter.values(), Decimal(0)),
                vcpu_hours=hours(d.vcpu_hours),
                ram_gib_hours=hours(d.ram_gib_hours),
                storage_gib_hours=hours(d.storage_gib_hours),
                exact=d,
            )
        )
    return report
