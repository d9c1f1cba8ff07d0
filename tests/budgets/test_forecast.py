"""Month-to-date cost, the hourly run rate and the month-end forecast; a launch's budget impact."""

from __future__ import annotations

from decimal import Decimal

from portal.budgets.selectors import BudgetLevel, budget_status, launch_budget_impact, project_forecast
from tests.budgets.conftest import at, rolled


def _history(segment):
    segment("0.50", at(1), at(3))  # 48 h closed: 24.00
    segment("0.25", at(2), quantity=2)  # 0.50 an hour, still running
    segment("9.99", at(20, month=2), at(28, month=2))  # February: not this month
    segment("5.00", at(1, month=4))  # April: not yet


def test_forecast_is_spend_so_far_plus_the_run_rate_for_the_hours_left(segment, project):
    _history(segment)
    now = rolled(at(11))
    found = project_forecast(project, now=now)
    assert found.spent == Decimal("132.00")  # 24 + 9 days x 24 h x 0.50
    assert found.run_rate == Decimal("0.50")
    assert found.hours_left == 21 * 24
    assert found.forecast == Decimal("384.00")  # 132 + 504 h x 0.50


def test_mid_hour_today_counts_what_ran_today(segment, project):
    _history(segment)
    now = rolled(at(11, 6).replace(minute=30))
    found = project_forecast(project, now=now)
    assert found.spent == Decimal("135.25")  # 6.5 h of today at 0.50
    assert found.forecast == Decimal("384.00")  # the rate has not changed, so neither has the end


def test_status_levels(segment, project, budget):
    _history(segment)
    now = rolled(at(11))
    status = budget_status(project, now=now, budget=budget("400"))
    assert (status.percent_spent, status.percent_forecast, status.level) == (
        Decimal("33.0"),
        Decimal("96.0"),
        BudgetLevel.OK,
    )
    assert budget_status(project, now=now, budget=budget("300")).level == BudgetLevel.WATCH  # forecast over
    assert budget_status(project, now=now, budget=budget("160")).level == BudgetLevel.WATCH  # 82 % spent
    assert budget_status(project, now=now, budget=budget("132")).level == BudgetLevel.OVER


def test_no_budget_no_status_and_no_impact(project, catalog):
    assert budget_status(project) is None
    assert launch_budget_impact(project, Decimal("0.10")) is None


def test_launch_impact_sentence(segment, project, budget):
    _history(segment)
    budget("500")
    impact = launch_budget_impact(project, Decimal("0.10"), now=rolled(at(11)))
    assert impact.added_monthly == Decimal("73.00")  # 730 h, as the wizard prices a month
    assert impact.forecast == Decimal("434.40")  # 384 + 504 h x 0.10
    assert impact.percent == "87" and not impact.over_budget
    assert impact.sentence == "+73.00 EUR/month → 87 % of this project's 500.00 EUR budget"


def test_just_over_never_reads_100_percent(segment, project, budget):
    segment("1.00", at(1))  # 744 h in March
    budget("744.00")
    impact = launch_budget_impact(project, Decimal("0.001"), now=rolled(at(1)))
    assert impact.over_budget and impact.percent == "100.1"
