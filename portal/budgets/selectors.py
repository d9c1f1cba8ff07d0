"""What a project is spending this month, where the month is heading, and what a launch would add.

The forecast is month-to-date cost (portal.metering's rollups plus today) plus what is costing
money right now (the open usage segments' hourly price) for every hour left in the month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal
from enum import StrEnum

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from portal.budgets.models import Budget
from portal.catalog.models import HOURS_PER_MONTH
from portal.metering.models import UsageSegment
from portal.metering.selectors import month_bounds, month_to_date_cost
from portal.tenancy.models import Project

CENT = Decimal("0.01")
SECONDS_PER_HOUR = Decimal(3600)


def money(value: Decimal) -> str:
    return f"{value.quantize(CENT, ROUND_HALF_UP)} {settings.PORTAL_CURRENCY}"


@dataclass(frozen=True)
class Forecast:
    spent: Decimal  # this month so far
    run_rate: Decimal  # per hour, what costs money right now
    hours_left: Decimal  # in the month
    forecast: Decimal  # at the end of the month if nothing changes
    month: date  # its first day


def hourly_run_rate(project: Project, now: datetime) -> Decimal:
    """Per hour, everything of the project that is being billed at `now`."""
    rows = (
        UsageSegment.objects.filter(project=project, started_at__lte=now)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=now))
        .values_list("quantity", "unit_price")
    )
    return sum((quantity * price for quantity, price in rows), Decimal(0))


def project_forecast(project: Project, *, now: datetime | None = None) -> Forecast:
    now = now or timezone.now()
    start, end = month_bounds(now)
    spent = month_to_date_cost(now=now, project=project).quantize(CENT, ROUND_HALF_UP)
    rate = hourly_run_rate(project, now)
    hours_left = Decimal((end - now).total_seconds()) / SECONDS_PER_HOUR
    forecast = (spent + rate * hours_left).quantize(CENT, ROUND_HALF_UP)
    return Forecast(spent=spent, run_rate=rate, hours_left=hours_left, forecast=forecast, month=start.date())


class BudgetLevel(StrEnum):
    OK = "ok"
    WATCH = "watch"  # 80 % spent, or heading over by the month's end
    OVER = "over"  # used up


@dataclass(frozen=True)
class BudgetStatus:
    amount: Decimal
    spent: Decimal
    forecast: Decimal
    percent_spent: Decimal  # one decimal
    percent_forecast: Decimal
    level: BudgetLevel
    run_rate: Decimal = Decimal(0)
    month: date | None = None

    @property
    def forecast_over(self) -> bool:
        return self.forecast > self.amount

    @property
    def left(self) -> Decimal:
        return max(self.amount - self.spent, Decimal(0))


def _percent(part: Decimal, whole: Decimal) -> Decimal:
    return (part * 100 / whole).quantize(Decimal("0.1"), ROUND_HALF_UP)


def budget_status(
    project: Project, *, now: datetime | None = None, budget: Budget | None = None
) -> BudgetStatus | None:
    """The project's budget against this month's spend and forecast; None when it has no budget."""
    budget = budget or Budget.objects.filter(project=project).first()
    if budget is None:
        return None
    found = project_forecast(project, now=now)
    if found.spent >= budget.amount:
        level = BudgetLevel.OVER
    elif found.spent * 100 >= budget.amount * 80 or found.forecast > budget.amount:
        level = BudgetLevel.WATCH
    else:
        level = BudgetLevel.OK
    return BudgetStatus(
        amount=budget.amount,
        spent=found.spent,
        forecast=found.forecast,
        percent_spent=_percent(found.spent, budget.amount),
        percent_forecast=_percent(found.forecast, budget.amount),
        level=level,
        run_rate=found.run_rate,
        month=found.month,
    )


@dataclass(frozen=True)
class Impact:
    added_monthly: Decimal  # the launch's price for a whole month (730 h), as the wizard shows it
    forecast: Decimal  # this month's forecast with the launch running from now on
    percent: str  # that forecast as a share of the budget, ready to print ("92")
    amount: Decimal  # the budget
    over_budget: bool
    sentence: str  # "+61.32 EUR/month → 92 % of this project's 500.00 EUR budget"


def launch_budget_impact(
    project: Project, added_hourly: Decimal, *, now: datetime | None = None
) -> Impact | None:
    """What launching something that costs `added_hourly` does to the project's budget this month;
    None when the project has no budget."""
    budget = Budget.objects.filter(project=project).first()
    if budget is None:
        return None
    found = project_forecast(project, now=now)
    added_hourly = Decimal(added_hourly)
    forecast = (found.forecast + added_hourly * found.hours_left).quantize(CENT, ROUND_HALF_UP)
    over = forecast > budget.amount
    share = forecast * 100 / budget.amount
    percent = share.quantize(Decimal(1), ROUND_HALF_UP)
    if over and percent <= 100:  # never print "100 %" for something that is over
        percent = share.quantize(Decimal("0.1"), ROUND_UP)
    added_monthly = (added_hourly * HOURS_PER_MONTH).quantize(CENT, ROUND_HALF_UP)
    return Impact(
        added_monthly=added_monthly,
        forecast=forecast,
        percent=str(percent),
        amount=budget.amount,
        over_budget=over,
        sentence=f"+{money(added_monthly)}/month → {percent} % of this project's {money(budget.amount)} budget",
    )
