"""One row of every budgets model, for tests that open every admin page (tests/core/test_admin.py)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from portal.budgets.models import Budget, BudgetAlert, InstanceLease, NudgeDigest


def budget_admin_rows(project, owner) -> None:
    from tests.factories import InstanceFactory

    now = timezone.now()
    Budget.objects.create(project=project, amount=Decimal(500), guard="warn", updated_by=owner)
    BudgetAlert.objects.create(
        project=project,
        month=now.date().replace(day=1),
        kind="spent_50",
        sent_at=now,
        amount=Decimal(500),
        spent=Decimal(260),
        forecast=Decimal(480),
    )
    NudgeDigest.objects.create(
        project=project, week=now.date(), sent_at=now, instance_names=["idle"], monthly_saving=Decimal("8.03")
    )
    InstanceLease.objects.create(
        instance=InstanceFactory(project=project, name="leased"),
        stop_at=now + timedelta(days=3),
        created_by=owner,
    )
