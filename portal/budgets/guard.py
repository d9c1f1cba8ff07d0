"""The launch guard: what a project's budget says about launching something that costs
`added_hourly` more. Pure reads; the launch service and the wizard call it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from portal.budgets.models import Budget, GuardMode
from portal.budgets.selectors import Impact, launch_budget_impact, money
from portal.tenancy.models import Membership, Project, Role


@dataclass(frozen=True)
class GuardResult:
    allowed: bool
    needs_approval: bool  # not allowed for this user, but an owner may launch it
    message: str  # empty when there is nothing to say
    impact: Impact | None = None


def _is_owner(user, project: Project) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return Membership.objects.filter(
        organization_id=project.organization_id, user=user, role=Role.OWNER
    ).exists()


def budget_guard(
    project: Project, added_hourly: Decimal, user, *, now: datetime | None = None
) -> GuardResult:
    budget = Budget.objects.filter(project=project).first()
    if budget is None or budget.guard == GuardMode.OFF:
        return GuardResult(allowed=True, needs_approval=False, message="")
    impact = launch_budget_impact(project, added_hourly, now=now)
    if impact is None or not impact.over_budget:
        return GuardResult(allowed=True, needs_approval=False, message="", impact=impact)
    over = (
        f"This launch takes {project.name}'s forecast for this month to {money(impact.forecast)}, "
        f"{impact.percent} % of its {money(budget.amount)} budget."
    )
    if budget.guard == GuardMode.WARN:
        return GuardResult(allowed=True, needs_approval=False, message=over, impact=impact)
    if budget.guard == GuardMode.APPROVAL:
        if _is_owner(user, project):
            return GuardResult(
                allowed=True,
                needs_approval=False,
                message=f"{over} Launches over budget need an owner: as an owner, you may go ahead.",
                impact=impact,
            )
        return GuardResult(
            allowed=False,
            needs_approval=True,
            message=(
                f"{over} Launches over budget need an owner's approval: ask an owner of "
                f"{project.organization.name} to launch it, or to raise the budget."
            ),
            impact=impact,
        )
    return GuardResult(
        allowed=False,
        needs_approval=False,
        message=(
            f"{over} Launches over budget are blocked in this project: stop servers you no longer "
            "need, or ask an owner or admin to raise the budget."
        ),
        impact=impact,
    )
