"""The budget page (status, forecast, alerts; amount and launch guard) and the leases page."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from portal.budgets import services
from portal.budgets.forms import BudgetForm, LeaseForm
from portal.budgets.models import GUARD_HELP, AlertKind, Budget, BudgetAlert, GuardMode
from portal.budgets.notify import usage_path
from portal.budgets.selectors import budget_status, money, project_forecast
from portal.catalog.models import HOURS_PER_MONTH
from portal.compute.models import Instance, InstanceStatus
from portal.metering.selectors import month_bounds
from portal.tenancy.access import Perm, project_access

ALERT_ORDER = list(AlertKind)


@login_required
@require_http_methods(["GET", "POST"])
def project_budget(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    perm = Perm.PROJECT_EDIT if request.method == "POST" else Perm.PROJECT_VIEW
    access = project_access(request.user, org_slug, project_slug, perm)
    project = access.project
    budget = Budget.objects.filter(project=project).first()
    initial = {"amount": budget.amount, "guard": budget.guard} if budget else {"guard": GuardMode.OFF}
    form = BudgetForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if request.POST.get("action") == "remove":
            if services.budget_remove(access=access, request=request):
                messages.success(request, "Budget removed: no more alerts, and launches are not checked.")
            return redirect("budgets:project_budget", org_slug=org_slug, project_slug=project.slug)
        if form.is_valid():
            services.budget_set(
                access=access,
                amount=form.cleaned_data["amount"],
                guard=form.cleaned_data["guard"],
                request=request,
            )
            messages.success(request, "Budget saved.")
            return redirect("budgets:project_budget", org_slug=org_slug, project_slug=project.slug)
    now = timezone.now()
    forecast = project_forecast(project, now=now)
    status = budget_status(project, now=now, budget=budget) if budget else None
    return render(
        request,
        "budgets/project_budget.html",
        {
            "org": access.organization,
            "project": project,
            "budget": budget,
            "status": status,
            "forecast": forecast,
            "month_last_day": month_bounds(now)[1] - timedelta(days=1),
            "alerts": sorted(
                BudgetAlert.objects.filter(project=project, month=forecast.month),
                key=lambda alert: (alert.sent_at, ALERT_ORDER.index(alert.kind)),
            ),
            "form": form,
            "guard_help": [(mode, GUARD_HELP[mode]) for mode in GuardMode],
            "can_edit": access.can(Perm.PROJECT_EDIT),
            "run_rate": money(forecast.run_rate),
            "usage_path": usage_path(project),
            "currency": settings.PORTAL_CURRENCY,
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_leases(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    perm = Perm.RESOURCE_OPERATE if request.method == "POST" else Perm.PROJECT_VIEW
    access = project_access(request.user, org_slug, project_slug, perm)
    project = access.project
    form = LeaseForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        instance = form.cleaned_data["instance"]
        if form.cleaned_data["action"] == "clear":
            if services.lease_clear(access=access, instance=instance, request=request):
                messages.success(request, f"{instance.name} keeps running: lease cleared.")
        else:
            lease = services.lease_set(
                access=access, instance=instance, stop_at=form.cleaned_data["stop_at"], request=request
            )
            messages.success(
                request,
                f"{instance.name} will be stopped on {lease.stop_at:%Y-%m-%d at %H:%M} UTC; "
                "a reminder goes out a day before.",
            )
        return redirect("budgets:project_leases", org_slug=org_slug, project_slug=project.slug)
    now = timezone.now()
    servers = list(
        Instance.objects.filter(project=project, status=InstanceStatus.RUNNING)
        .select_related("flavor", "image", "zone", "lease")
        .order_by("name")
    )
    for server in servers:
        hourly = server.flavor.price_hourly + server.image.license_price_hourly
        server.monthly = money(hourly * HOURS_PER_MONTH)
        server.days_running = (now - server.running_since).days if server.running_since else None
        server.current_lease = getattr(server, "lease", None)
    first, last = LeaseForm.date_range()
    return render(
        request,
        "budgets/project_leases.html",
        {
            "org": access.organization,
            "project": project,
            "servers": servers,
            "form": form,
            "failed_id": str(form.data.get("instance", "")) if form.errors else "",
            "can_operate": access.can(Perm.RESOURCE_OPERATE),
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
        },
        status=400 if form.errors else 200,
    )
