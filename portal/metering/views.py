"""Usage pages of a project and of an organization, the JSON their graphs draw, their CSV export,
and a server's CPU samples for its detail page. Every member role may read them."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_safe

from portal.compute.backends.base import BackendError, NotFound, get_backend
from portal.compute.models import Instance, InstanceStatus
from portal.compute.views.common import get_instance
from portal.lib.money import apportion
from portal.metering.models import Meter, ResourceType
from portal.metering.periods import PRESETS, Period, PeriodForm
from portal.metering.report import hours, usage_report
from portal.metering.selectors import cost_by_project, cost_by_resource
from portal.statements.documents import safe_cell
from portal.tenancy.access import Access, org_access, project_access

# Windows the CPU graph offers: (length, label).
METRIC_WINDOWS = {"24h": (timedelta(hours=24), "24 hours"), "7d": (timedelta(days=7), "7 days")}


# --- pages -------------------------------------------------------------------------------------


@login_required
@require_safe
def project_usage(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    return _usage_page(request, access, project=access.project)


@login_required
@require_safe
def org_usage(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug)
    return _usage_page(request, access, organization=access.organization)


def _usage_page(request: HttpRequest, access: Access, **scope) -> HttpResponse:
    now = timezone.now()
    form = PeriodForm(request.GET, today=now.date())
    context = {
        "access": access,
        "org": access.organization,
        "project": access.project,
        "form": form,
        "presets": [(key, short) for key, (short, _) in PRESETS.items()],
        "currency": settings.PORTAL_CURRENCY,
    }
    if not form.is_valid():
        context["period_error"] = form.error_message()
        return render(request, "metering/usage.html", context, status=400)
    period = form.chosen
    report = usage_report(period, now=now, **scope)
    resources = _resource_rows(access, period, now, **scope)
    context |= {
        "period": period,
        "report": report,
        "resources": resources,
        "projects": _project_rows(access, period, now) if access.project is None else None,
        "json_url": _scope_url(access, "usage_json") + "?" + period.query,
        "csv_url": _scope_url(access, "usage_csv") + "?" + period.query,
        "resources_csv_url": _scope_url(access, "usage_csv") + "?" + period.query + "&by=resource",
    }
    return render(request, "metering/usage.html", context)


def _scope_url(access: Access, name: str) -> str:
    if access.project is not None:
        return reverse(f"metering:project_{name}", args=[access.organization.slug, access.project.slug])
    return reverse(f"metering:org_{name}", args=[access.organization.slug])


def _resource_rows(access: Access, period: Period, now: datetime, **scope) -> list[dict]:
    """The per-server (and per-volume) cost table, with a link to each server that still exists."""
    start, end = period.bounds
    rows = cost_by_resource(start=start, end=end, now=now, **scope)
    projects = {p.pk: p for p in access.organization.projects.all()}
    live = set(
        Instance.objects.filter(
            pk__in=[r["resource_id"] for r in rows if r["type"] == ResourceType.INSTANCE],
            project__organization=access.organization,
        )
        .exclude(status=InstanceStatus.TERMINATED)
        .values_list("pk", flat=True)
    )
    # Rows add up to the period's total, and each row's compute and storage to the row.
    for row, cost in zip(rows, apportion([r["cost"] for r in rows]), strict=True):
        project = projects.get(row["project_id"])
        row["project"] = project
        row["type_label"] = ResourceType(row["type"]).label
        row["cost"] = cost
        row["hours"] = hours(row["hours"])
        by_meter = row["by_meter"]
        row["compute"], row["storage"] = apportion(
            [
                by_meter.get(Meter.COMPUTE, 0) + by_meter.get(Meter.LICENSE, 0),
                by_meter.get(Meter.DISK, 0) + by_meter.get(Meter.VOLUME, 0) + by_meter.get(Meter.SNAPSHOT, 0),
            ],
            cost,
        )
        row["url"] = (
            reverse(
                "compute:instance_detail",
                args=[access.organization.slug, project.slug, row["resource_id"]],
            )
            if row["resource_id"] in live and project is not None
            else ""
        )
    return rows


def _project_rows(access: Access, period: Period, now: datetime) -> list[dict]:
    costs = cost_by_project(start=period.start, end=period.end, organization=access.organization, now=now)
    projects = list(access.organization.projects.all())
    shown = apportion([costs.get(p.pk, Decimal(0)) for p in projects])  # adding up to the total
    rows = [
        {
            "project": p,
            "cost": cost,
            "url": reverse("metering:project_usage", args=[access.organization.slug, p.slug])
            + "?"
            + period.query,
        }
        for p, cost in zip(projects, shown, strict=True)
    ]
    return sorted(rows, key=lambda r: (-r["cost"], r["project"].name))


# --- data: JSON for the graphs, CSV ------------------------------------------------------------


def _period_or_error(request: HttpRequest, now: datetime) -> Period | str:
    form = PeriodForm(request.GET, today=now.date())
    return form.chosen if form.is_valid() else form.error_message()


@login_required
@require_safe
def project_usage_json(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    return _usage_json(request, project=access.project)


@login_required
@require_safe
def org_usage_json(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug)
    return _usage_json(request, organization=access.organization)


def _usage_json(request: HttpRequest, **scope) -> HttpResponse:
    now = timezone.now()
    period = _period_or_error(request, now)
    if isinstance(period, str):
        return JsonResponse({"error": period}, status=400)
    return JsonResponse(usage_report(period, now=now, **scope).as_json())


@login_required
@require_safe
def project_usage_csv(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    name = f"{access.organization.slug}-{access.project.slug}"
    return _usage_csv(request, access, name, project=access.project)


@login_required
@require_safe
def org_usage_csv(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug)
    return _usage_csv(request, access, access.organization.slug, organization=access.organization)


def _usage_csv(request: HttpRequest, access: Access, name: str, **scope) -> HttpResponse:
    """One row per day (what the graphs show), or with ?by=resource one row per server and volume."""
    now = timezone.now()
    period = _period_or_error(request, now)
    if isinstance(period, str):
        return HttpResponse(period, status=400, content_type="text/plain; charset=utf-8")
    by_resource = request.GET.get("by") == "resource"
    kind = "usage-by-resource" if by_resource else "usage"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{kind}-{name}-{period.start}-{period.end}.csv"'
    writer = csv.writer(response)
    if not by_resource:
        report = usage_report(period, now=now, **scope)
        writer.writerow(report.csv_header())
        writer.writerows(report.csv_rows())
        return response
    currency = settings.PORTAL_CURRENCY.lower()
    writer.writerow(
        [
            "project",
            "resource_type",
            "resource_id",
            "name",
            "zone",
            "running_hours",
            f"compute_cost_{currency}",
            f"storage_cost_{currency}",
            f"total_cost_{currency}",
        ]
    )
    for row in _resource_rows(access, period, now, **scope):
        writer.writerow(
            [
                row["project"].slug if row["project"] else "",
                row["type"],
                row["resource_id"],
                _csv_safe(row["name"]),
                row["zone"],
                row["hours"],
                row["compute"],
                row["storage"],
                row["cost"],
            ]
        )
    return response


def _csv_safe(value) -> str:
    # A cell starting with = + - @ (or a tab/CR) would run as a formula in a spreadsheet.
    return safe_cell(value)


# --- a server's CPU samples --------------------------------------------------------------------


@login_required
@require_safe
def instance_metrics(request: HttpRequest, org_slug: str, project_slug: str, instance_id) -> HttpResponse:
    """CPU utilisation from the cloud, fetched by the detail page's script (never while rendering it)."""
    access = project_access(request.user, org_slug, project_slug)
    instance = get_instance(access, instance_id)
    key = request.GET.get("range", "24h")
    if key not in METRIC_WINDOWS:
        return JsonResponse({"error": "Choose a range of 24h or 7d."}, status=400)
    length, label = METRIC_WINDOWS[key]
    end = timezone.now()
    start = end - length
    body = {
        "instance": str(instance.pk),
        "range": key,
        "label": label,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "samples": [],
        "message": "",
    }
    if not instance.backend_id:
        body["message"] = "This server has not reached the cloud yet."
        return JsonResponse(body)
    try:
        samples = get_backend(instance.zone.backend).cpu_samples(instance.backend_id, start, end)
    except NotFound:
        body["message"] = "The cloud no longer knows this server."
        return JsonResponse(body)
    except BackendError as error:
        return JsonResponse({"error": error.user_message}, status=503)
    body["samples"] = [[int(at.timestamp()), round(value, 1)] for at, value in samples]
    if not samples and instance.status != InstanceStatus.RUNNING:
        body["message"] = "The server is not running, so it reports no CPU samples."
    elif not samples:
        body["message"] = (
            "No CPU samples in this window yet: they appear every few minutes while the server runs, "
            "if its cloud reports them."
        )
    return JsonResponse(body)
