"""Budget alerts: 50 %, 80 % and 100 % of actual spend, and a forecast over the budget, each at
most once per project and month.

A check claims each newly crossed threshold by inserting its BudgetAlert row; the unique
constraint lets exactly one insert succeed however many workers run the check, and only the
worker whose insert succeeded sends. Thresholds crossed together (a budget set late in the month,
a check that was not run for a while) go out in one e-mail.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.budgets.models import SPENT_THRESHOLDS, AlertKind, Budget, BudgetAlert
from portal.budgets.notify import budget_url, mail_each, owner_emails, usage_url
from portal.budgets.selectors import BudgetStatus, budget_status
from portal.tenancy.models import Project

log = logging.getLogger(__name__)


def crossed(status: BudgetStatus) -> list[AlertKind]:
    kinds = [kind for kind, percent in SPENT_THRESHOLDS if status.spent * 100 >= status.amount * percent]
    if status.forecast > status.amount:
        kinds.append(AlertKind.FORECAST_OVER)
    return kinds


def _claim(project: Project, kind: AlertKind, status: BudgetStatus, now: datetime) -> bool:
    try:
        with transaction.atomic():
            BudgetAlert.objects.create(
                project=project,
                month=status.month,
                kind=kind,
                sent_at=now,
                amount=status.amount,
                spent=status.spent,
                forecast=status.forecast,
            )
    except IntegrityError:  # another check sent it first
        return False
    return True


def budget_check(budget: Budget, *, now: datetime | None = None) -> list[AlertKind]:
    """Send what this budget newly calls for; returns the alerts this call sent."""
    now = now or timezone.now()
    project = budget.project
    status = budget_status(project, now=now, budget=budget)
    due = crossed(status)
    if not due:
        return []
    sent = set(
        BudgetAlert.objects.filter(project=project, month=status.month, kind__in=due).values_list(
            "kind", flat=True
        )
    )
    if sent.issuperset(due):
        return []
    with transaction.atomic():
        claimed = [kind for kind in due if kind not in sent and _claim(project, kind, status, now)]
        if claimed:
            spent_percent = max(
                (percent for kind, percent in SPENT_THRESHOLDS if kind in claimed), default=None
            )
            mail_each(
                "budgets/email/alert",
                owner_emails(project),
                {
                    "project": project,
                    "org": project.organization,
                    "status": status,
                    "spent_percent": spent_percent,
                    "forecast_over": AlertKind.FORECAST_OVER in claimed,
                    "usage_url": usage_url(project),
                    "budget_url": budget_url(project),
                },
            )
    return claimed


def budgets_check_all(*, now: datetime | None = None) -> int:
    """Check every project that has a budget; returns how many alerts were sent."""
    now = now or timezone.now()
    sent = 0
    for budget in Budget.objects.select_related("project__organization").order_by("pk"):
        try:
            sent += len(budget_check(budget, now=now))
        except Exception:  # one project's failure must not silence the others' alerts
            log.exception("budget check failed", extra={"project": budget.project_id})
    return sent
