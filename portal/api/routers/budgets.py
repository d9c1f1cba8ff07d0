"""Usage series and a project's budget. Quantities (vCPU-, RAM- and storage-hours) need only a
token that can read the project; costs and budgets need a token created with billing access."""

from decimal import Decimal

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field as NinjaField
from ninja import Query, Router, Schema, Status

from portal.api.access import find_project, require_billing, token_project_access
from portal.api.errors import ApiProblem
from portal.api.routers.common import token_of
from portal.api.schemas import BudgetIn, BudgetOut, Problem, UsageOut
from portal.budgets import services as budget_services
from portal.budgets.models import Budget
from portal.budgets.selectors import budget_status, project_forecast
from portal.metering.periods import PeriodForm
from portal.metering.report import usage_report
from portal.tenancy.access import Perm

router = Router(tags=["usage and budgets"])
ERRORS = {401: Problem, 403: Problem, 404: Problem, 422: Problem, 429: Problem}


class PeriodQuery(Schema):
    period: str | None = NinjaField(
        None, description="7d, 30d (default), 90d, 12m or custom (with start and end)."
    )
    start: str | None = NinjaField(None, description="YYYY-MM-DD, first day (UTC), included.")
    end: str | None = NinjaField(None, description="YYYY-MM-DD, last day (UTC), included; at most today.")


@router.get("/projects/{project_id}/usage", response={200: UsageOut, **ERRORS}, summary="Daily usage")
def project_usage(request: HttpRequest, project_id: str, query: Query[PeriodQuery]):
    """One value per UTC day, as the usage page's graphs: vCPU-, RAM- and storage-hours, and with a
    billing token the cost per day and meter. Giving only start and end means a custom period."""
    token = token_of(request)
    access = token_project_access(token, find_project(token, project_id))
    now = timezone.now()
    form = PeriodForm({k: v for k, v in query.dict().items() if v}, today=now.date())
    if not form.is_valid():
        raise ApiProblem(422, form.error_message(), kind="invalid-request")
    data = usage_report(form.chosen, now=now, project=access.project).as_json()
    costs = access.may_see_costs
    totals = {
        k: Decimal(v) for k, v in data["totals"].items() if k != "cost_by_meter" and (costs or k != "cost")
    }
    if costs:
        totals["cost_by_meter"] = {m: Decimal(v) for m, v in data["totals"]["cost_by_meter"].items()}
    return UsageOut(
        project=access.project.pk,
        period=data["period"],
        currency=data["currency"],
        days=data["days"],
        vcpu_hours=data["vcpu_hours"],
        ram_gib_hours=data["ram_gib_hours"],
        storage_gib_hours=data["storage_gib_hours"],
        costs_included=costs,
        cost=data["cost"] if costs else None,
        cost_by_meter=data["cost_by_meter"] if costs else None,
        totals=totals,
    )


def _budget_out(project, budget: Budget | None) -> BudgetOut:
    now = timezone.now()
    forecast = project_forecast(project, now=now)
    status = budget_status(project, now=now, budget=budget) if budget else None
    return BudgetOut(
        project=project.pk,
        currency=settings.PORTAL_CURRENCY,
        amount=budget.amount if budget else None,
        guard=budget.guard if budget else None,
        spent=forecast.spent,
        forecast=forecast.forecast,
        run_rate_hourly=forecast.run_rate.quantize(Decimal("0.0001")),
        percent_spent=status.percent_spent if status else None,
        level=str(status.level) if status else None,
        month=forecast.month.isoformat(),
    )


def _billing_access(request: HttpRequest, project_id: str, perm: Perm = Perm.PROJECT_VIEW):
    token = token_of(request)
    access = token_project_access(token, find_project(token, project_id))
    require_billing(access)
    if perm != Perm.PROJECT_VIEW:
        access.require(perm)
    return access


@router.get("/projects/{project_id}/budget", response={200: BudgetOut, **ERRORS}, summary="Get the budget")
def get_budget(request: HttpRequest, project_id: str):
    """This month's spend and forecast, and the budget (amount and guard: null when none is set)."""
    access = _billing_access(request, project_id)
    return _budget_out(access.project, Budget.objects.filter(project=access.project).first())


@router.put("/projects/{project_id}/budget", response={200: BudgetOut, **ERRORS}, summary="Set the budget")
def set_budget(request: HttpRequest, project_id: str, body: BudgetIn):
    """Needs billing access and read-write scope, and the Owner or Admin role (as the budget page)."""
    access = _billing_access(request, project_id, Perm.PROJECT_EDIT)
    budget = budget_services.budget_set(access=access, amount=body.amount, guard=body.guard, request=request)
    return _budget_out(access.project, budget)


@router.delete("/projects/{project_id}/budget", response={204: None, **ERRORS}, summary="Remove the budget")
def remove_budget(request: HttpRequest, project_id: str):
    access = _billing_access(request, project_id, Perm.PROJECT_EDIT)
    budget_services.budget_remove(access=access, request=request)
    return Status(204, None)
