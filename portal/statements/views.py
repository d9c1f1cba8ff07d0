from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import groupby
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from portal.lib.money import apportion
from portal.statements.attestation import attestation_build, current_policies
from portal.statements.documents import (
    sha256_hex,
    statement_csv_body,
    statement_lines,
    with_hash_line,
)
from portal.statements.forms import PeriodForm, month_so_far, period_label, recent_months
from portal.statements.models import Statement, StatementStatus
from portal.statements.selectors import (
    first_of_month,
    month_is_billable,
    month_start_end,
    statement_for_month,
    statement_months,
)
from portal.tenancy.access import Access, Perm, org_access, project_access


@login_required
@require_safe
def statement_list(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.BILLING_VIEW)
    return render(
        request,
        "statements/statement_list.html",
        {
            "access": access,
            "org": access.organization,
            "statements": statement_months(organization=access.organization),
        },
    )


def _statement_or_404(access: Access, year: int, month: int):
    try:
        first = date(year, month, 1)
    except (ValueError, OverflowError):
        raise Http404("No such month.") from None
    org = access.organization
    now = timezone.now()
    if first > first_of_month(now):
        raise Http404("That month hasn't started.")
    closed = Statement.objects.filter(organization=org, month=first, status=StatementStatus.CLOSED).exists()
    if not closed and not month_is_billable(org, first, now):
        raise Http404("No statement for that month.")
    return statement_for_month(organization=org, month=first, now=now)


@login_required
@require_safe
def statement_detail(request: HttpRequest, org_slug: str, year: int, month: int) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.BILLING_VIEW)
    statement = _statement_or_404(access, year, month)
    lines = statement_lines(statement)
    groups = [(name, list(rows)) for name, rows in groupby(lines, key=lambda line: line.project_name)]
    # Shown to the cent so that lines add up to their subtotal and subtotals to the total (the
    # exact sum rounded once, as stored and in the CSV, which keeps every line's exact cost).
    subtotals = apportion([sum((line.cost for line in rows), Decimal(0)) for _, rows in groups], statement.total)
    by_project = [
        {
            "name": name,
            "lines": list(zip(rows, apportion([line.cost for line in rows], subtotal), strict=True)),
            "subtotal": subtotal,
        }
        for (name, rows), subtotal in zip(groups, subtotals, strict=True)
    ]
    return render(
        request,
        "statements/statement_detail.html",
        {
            "access": access,
            "org": access.organization,
            "statement": statement,
            "projects": by_project,
            "hash_ok": statement.hash_matches() if statement.is_final else None,
            "period_end": month_start_end(statement.month)[1] - timedelta(days=1),
        },
    )


@login_required
@require_safe
def statement_csv(request: HttpRequest, org_slug: str, year: int, month: int) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.BILLING_VIEW)
    statement = _statement_or_404(access, year, month)
    body = statement_csv_body(statement)
    if statement.is_final:
        body = with_hash_line(body, statement.content_hash)
        filename = f"statement-{access.organization.slug}-{statement.month:%Y-%m}.csv"
    else:
        filename = f"statement-{access.organization.slug}-{statement.month:%Y-%m}-preview.csv"
    return _csv_response(body, filename)


def _csv_response(body: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_safe
def org_attestation(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.BILLING_VIEW)
    return _attestation(request, access)


@login_required
@require_safe
def project_attestation(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.BILLING_VIEW)
    return _attestation(request, access)


def _attestation(request: HttpRequest, access: Access) -> HttpResponse:
    now = timezone.now()
    org, project = access.organization, access.project
    data = request.GET
    if not data.get("from") and not data.get("to"):  # the default period, shown in the form
        first, last = month_so_far(now.date())
        data = {"from": first.isoformat(), "to": last.isoformat()}
    form = PeriodForm(data, today=now.date())
    months = [
        {"label": label, "query": urlencode({"from": first, "to": last}), "first": first, "last": last}
        for label, first, last in recent_months(now.date(), since=(project or org).created_at.date())
    ]
    context = {"access": access, "org": org, "project": project, "form": form, "months": months}
    if not form.is_valid():
        return render(request, "statements/attestation.html", context, status=400)
    start, end = form.bounds
    attestation = attestation_build(organization=org, project=project, start=start, end=end, now=now)
    body = attestation.csv_body()
    if request.GET.get("format") == "csv":
        scope = f"{org.slug}-{project.slug}" if project else org.slug
        filename = f"residency-attestation-{scope}-{form.cleaned_data['from']}-{form.cleaned_data['to']}.csv"
        return _csv_response(with_hash_line(body), filename)
    period = QueryDict(mutable=True)
    period["from"] = form.cleaned_data["from"].isoformat()
    period["to"] = form.cleaned_data["to"].isoformat()
    context |= {
        "attestation": attestation,
        "content_hash": sha256_hex(body),
        "policies_now": current_policies(org, project),
        "projects": [] if project else list(org.projects.all()),
        "period_query": period.urlencode(),
        "period_from": form.cleaned_data["from"],
        "period_to": form.cleaned_data["to"],
        "period_label": period_label(form.cleaned_data["from"], form.cleaned_data["to"], now.date()),
    }
    return render(request, "statements/attestation.html", context)
