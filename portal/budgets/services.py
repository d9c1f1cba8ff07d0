"""Writes: set or remove a project's budget, set or clear a server's lease. Each is audited and a
repeat of the same request changes nothing."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.budgets.models import (
    BUDGET_MAX_AMOUNT,
    BUDGET_MIN_AMOUNT,
    AlertKind,
    Budget,
    BudgetAlert,
    GuardMode,
    InstanceLease,
)
from portal.budgets.selectors import CENT, project_forecast
from portal.compute.models import Instance
from portal.tenancy.access import Access, Perm
from portal.tenancy.models import Project


def _alerts_no_longer_true(project: Project, amount: Decimal, now: datetime) -> list[str]:
    """This month's alerts the new amount makes untrue: they may be sent again if it gets there."""
    found = project_forecast(project, now=now)
    still = {
        AlertKind.SPENT_50: found.spent * 100 >= amount * 50,
        AlertKind.SPENT_80: found.spent * 100 >= amount * 80,
        AlertKind.SPENT_100: found.spent >= amount,
        AlertKind.FORECAST_OVER: found.forecast > amount,
    }
    return [kind for kind, holds in still.items() if not holds]


def budget_set(
    *,
    access: Access,
    amount: Decimal,
    guard: str,
    request: HttpRequest | None = None,
    now: datetime | None = None,
) -> Budget:
    access.require(Perm.PROJECT_EDIT)
    now = now or timezone.now()
    amount = Decimal(amount)
    # The form and the API's schema refuse these with a message; here they must not reach the
    # arithmetic (a quantize of 10^30 raises) or the database.
    if not amount.is_finite() or not BUDGET_MIN_AMOUNT <= amount <= BUDGET_MAX_AMOUNT:
        raise ValueError(f"A budget is {BUDGET_MIN_AMOUNT} to {BUDGET_MAX_AMOUNT}, not {amount}.")
    amount, guard = amount.quantize(CENT), GuardMode(guard)
    user = access.membership.user
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=access.project.pk)
        budget = Budget.objects.filter(project=project).first()
        before = (budget.amount, budget.guard) if budget else (None, None)
        if before == (amount, guard):
            return budget
        if budget is None:
            budget = Budget(project=project)
        budget.amount, budget.guard, budget.updated_by = amount, guard, user
        budget.save()
        if before[0] is not None and amount != before[0]:
            BudgetAlert.objects.filter(
                project=project,
                month=now.date().replace(day=1),
                kind__in=_alerts_no_longer_true(project, amount, now),
            ).delete()
        changes = {}
        if before[0] != amount:
            changes["amount"] = [None if before[0] is None else str(before[0]), str(amount)]
        if before[1] != guard:
            changes["guard"] = [before[1], guard.value]
        audit_record(
            action=AuditAction.BUDGET_CHANGED,
            organization=project.organization,
            project=project,
            target=budget,
            changes=changes,
            actor=user,
            request=request,
        )
    return budget


def budget_remove(*, access: Access, request: HttpRequest | None = None) -> bool:
    """True if there was a budget to remove."""
    access.require(Perm.PROJECT_EDIT)
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=access.project.pk)
        budget = Budget.objects.filter(project=project).first()
        if budget is None:
            return False
        audit_record(
            action=AuditAction.BUDGET_CHANGED,
            organization=project.organization,
            project=project,
            target=budget,
            changes={"amount": [str(budget.amount), None], "guard": [budget.guard, None]},
            actor=access.membership.user,
            request=request,
        )
        budget.delete()
    return True


def lease_set(
    *, access: Access, instance: Instance, stop_at: datetime, request: HttpRequest | None = None
) -> InstanceLease:
    access.require(Perm.RESOURCE_OPERATE)
    user = access.membership.user
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=instance.pk, project=access.project)
        lease = InstanceLease.objects.filter(instance=instance).first()
        if lease is not None and lease.stop_at == stop_at:
            return lease
        before = lease.stop_at.isoformat() if lease else None
        if lease is None:
            lease = InstanceLease(instance=instance)
        lease.stop_at, lease.created_by, lease.reminded_at = stop_at, user, None
        lease.save()
        audit_record(
            action=AuditAction.LEASE_SET,
            organization=access.organization,
            project=access.project,
            target=instance,
            changes={"stop_at": [before, stop_at.isoformat()]},
            actor=user,
            request=request,
        )
    return lease


def lease_clear(*, access: Access, instance: Instance, request: HttpRequest | None = None) -> bool:
    """True if there was a lease to clear."""
    access.require(Perm.RESOURCE_OPERATE)
    with transaction.atomic():
        lease = InstanceLease.objects.select_for_update().filter(instance=instance).first()
        if lease is None:
            return False
        audit_record(
            action=AuditAction.LEASE_CLEARED,
            organization=access.organization,
            project=access.project,
            target=instance,
            changes={"stop_at": [lease.stop_at.isoformat(), None]},
            actor=access.membership.user,
            request=request,
        )
        lease.delete()
    return True
