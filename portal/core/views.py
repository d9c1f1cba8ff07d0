from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.celery import app as celery_app

log = logging.getLogger(__name__)


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return render(request, "core/landing.html")
    token = request.session.pop("pending_invitation", None)
    if token:  # once, right after the sign-up or sign-in the invitation led to
        return redirect("tenancy:invitation_accept", token=token)
    memberships = request.user.memberships.select_related("organization")
    last = request.session.get("last_org")
    membership = (
        memberships.filter(organization__slug=last).first()
        or memberships.order_by("organization__name").first()
    )
    if membership is None:
        return redirect("welcome")
    return redirect(membership.organization)


@login_required
def welcome(request: HttpRequest) -> HttpResponse:
    if request.user.memberships.exists():
        return redirect("home")
    return redirect(reverse("tenancy:org_create"))


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any failure means "down"; details go to the log, not to callers
        log.warning("healthz: database check failed", exc_info=True)
        return f"unavailable ({type(error).__name__})"
    return None


def _check_broker() -> str | None:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    except Exception as error:  # any failure means "down"; details go to the log, not to callers
        log.warning("healthz: broker check failed", exc_info=True)
        return f"unavailable ({type(error).__name__})"
    return None


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    problems = {
        name: problem
        for name, check in (("database", _check_database), ("broker", _check_broker))
        if (problem := check())
    }
    body = {
        "status": "ok" if not problems else "unavailable",
        "checks": {name: problems.get(name, "ok") for name in ("database", "broker")},
    }
    return JsonResponse(body, status=503 if problems else 200)
