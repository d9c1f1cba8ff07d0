"""Closing months: the only writes of this app."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, datetime

from django.db import transaction
from django.utils import timezone

from portal.statements.documents import sha256_hex, statement_csv_body
from portal.statements.models import Statement, StatementLine, StatementStatus
from portal.statements.selectors import (
    first_of_month,
    month_start_end,
    previous_month,
    statement_build,
)
from portal.tenancy.models import Organization

log = logging.getLogger(__name__)


def statement_close(*, organization: Organization, month: date, now: datetime | None = None) -> Statement:
    """Build and store `month`'s statement for `organization` and close it; a closed one is returned
    as it is, so calling this twice (or from two workers at once) leaves one unchanged statement."""
    now = now or timezone.now()
    month = first_of_month(month)
    if now < month_start_end(month)[1]:
        raise ValueError(f"{month:%Y-%m} isn't over yet; only complete months are closed.")
    with transaction.atomic():
        Statement.objects.get_or_create(
            organization=organization,
            month=month,
            defaults={"organization_name": organization.name, "currency": ""},
        )
        statement = Statement.objects.select_for_update().get(organization=organization, month=month)
        if statement.status == StatementStatus.CLOSED:
            return statement
        draft = statement_build(organization=organization, month=month, now=now)
        final = dataclasses.replace(draft, is_final=True, closed_at=now)
        statement.lines.all().delete()  # left by nothing today; an open row is only ever ours
        StatementLine.objects.bulk_create(
            StatementLine(
                statement=statement,
                project_id=line.project_id,
                project_name=line.project_name,
                meter=line.meter,
                quantity_hours=line.quantity_hours,
                cost=line.cost,
            )
            for line in draft.lines
        )
        # The one transition from open to closed: a conditional UPDATE, as save() refuses it.
        Statement.objects.filter(pk=statement.pk, status=StatementStatus.OPEN).update(
            status=StatementStatus.CLOSED,
            closed_at=now,
            organization_name=organization.name,
            currency=final.currency,
            total=final.total,
            content_hash=sha256_hex(statement_csv_body(final)),
        )
    statement.refresh_from_db()
    log.info(
        "statement closed: %s %s total %s %s", organization.slug, month, statement.total, statement.currency
    )
    return statement


def months_due(organization: Organization, now: datetime, closed: set[date]) -> list[date]:
    """Complete months since the organization was created that have no closed statement yet."""
    month = first_of_month(organization.created_at)
    last = previous_month(first_of_month(now))
    due = []
    while month <= last:
        if month not in closed:
            due.append(month)
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return due


def statements_close_due(now: datetime | None = None) -> int:
    """Close every organization's complete months that aren't closed yet (normally just the previous
    month; more after the task didn't run for a while). Idempotent; returns how many it closed."""
    now = now or timezone.now()
    closed: dict[int, set[date]] = {}
    for org_id, month in Statement.objects.filter(status=StatementStatus.CLOSED).values_list(
        "organization_id", "month"
    ):
        closed.setdefault(org_id, set()).add(month)
    count = 0
    for organization in Organization.objects.filter(created_at__lt=month_start_end(first_of_month(now))[0]):
        for month in months_due(organization, now, closed.get(organization.pk, set())):
            try:
                statement_close(organization=organization, month=month, now=now)
                count += 1
            except Exception:  # one organization's failure must not keep the others' months open
                log.exception(
                    "closing a statement failed", extra={"organization": organization.pk, "month": str(month)}
                )
    return count
