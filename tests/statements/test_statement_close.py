"""Closing a month stores its statement once; a closed statement never changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from portal.statements import tasks
from portal.statements.documents import sha256_hex, statement_csv_body
from portal.statements.models import Statement, StatementClosedError, StatementLine, StatementStatus
from portal.statements.selectors import statement_build
from portal.statements.services import statement_close, statements_close_due
from tests.factories import OrganizationFactory, ProjectFactory
from tests.statements.helpers import created_at, make_segment

MARCH = date(2026, 3, 1)
START = datetime(2026, 3, 1, tzinfo=UTC)
APRIL_2 = datetime(2026, 4, 2, 0, 20, tzinfo=UTC)


@pytest.fixture
def march_usage(project, catalog):
    zone = catalog["fra1-a"]
    make_segment(project, zone, start=START + timedelta(days=2), end=START + timedelta(days=5))
    make_segment(project, zone, start=START, end=None, meter="disk", quantity="50", price="0.000137")
    return project


@pytest.fixture
def closed(org, march_usage) -> Statement:
    return statement_close(organization=org, month=MARCH, now=APRIL_2)


def test_closing_stores_the_lines_total_and_hash(closed, org):
    assert closed.status == StatementStatus.CLOSED
    assert closed.closed_at == APRIL_2
    assert closed.organization_name == "Acme Research"
    assert closed.currency == "EUR"
    lines = list(closed.lines.all())
    assert [(line.project_name, line.meter) for line in lines] == [
        ("Web shop", "compute"),
        ("Web shop", "disk"),
    ]
    assert lines[0].quantity_hours == Decimal(72)
    assert closed.total == (Decimal("0.792") + Decimal(50 * 744) * Decimal("0.000137")).quantize(
        Decimal("0.01")
    )
    assert closed.content_hash == sha256_hex(statement_csv_body(closed))
    assert closed.hash_matches()


def test_closing_twice_gives_one_unchanged_statement(closed, org):
    again = statement_close(organization=org, month=MARCH, now=APRIL_2 + timedelta(days=3))
    assert again.pk == closed.pk
    assert again.closed_at == APRIL_2
    assert again.content_hash == closed.content_hash
    assert Statement.objects.count() == 1
    assert StatementLine.objects.count() == 2


def test_a_month_that_is_not_over_is_not_closed(org):
    with pytest.raises(ValueError, match="isn't over"):
        statement_close(organization=org, month=MARCH, now=datetime(2026, 3, 31, 23, tzinfo=UTC))
    assert not Statement.objects.exists()


def test_a_closed_statement_refuses_every_change(closed):
    total, lines = closed.total, list(closed.lines.values_list("meter", "cost"))
    closed.total = Decimal("0.01")
    with pytest.raises(StatementClosedError):
        closed.save()
    with pytest.raises(StatementClosedError):
        closed.delete()
    with pytest.raises(StatementClosedError):
        Statement.objects.filter(pk=closed.pk).update(total=0)
    with pytest.raises(StatementClosedError):
        Statement.objects.all().delete()
    line = closed.lines.first()
    line.cost = Decimal(0)
    with pytest.raises(StatementClosedError):
        line.save()
    with pytest.raises(StatementClosedError):
        line.delete()
    with pytest.raises(StatementClosedError):
        StatementLine.objects.filter(statement=closed).update(cost=0)
    with pytest.raises(StatementClosedError):
        StatementLine.objects.all().delete()
    with pytest.raises(StatementClosedError):
        StatementLine.objects.bulk_create(
            [
                StatementLine(
                    statement=closed,
                    project=line.project,
                    project_name="x",
                    meter="volume",
                    quantity_hours=1,
                    cost=1,
                )
            ]
        )
    stored = Statement.objects.get(pk=closed.pk)
    assert stored.total == total
    assert list(stored.lines.values_list("meter", "cost")) == lines
    assert stored.hash_matches()


def test_usage_added_later_does_not_change_a_closed_statement(closed, org, project, catalog):
    before = list(closed.lines.values_list("meter", "quantity_hours", "cost"))
    # A segment written after the close, back-dated into March (e.g. a late correction).
    make_segment(project, catalog["fra1-a"], start=START + timedelta(days=10), end=START + timedelta(days=20))
    make_segment(
        project, catalog["fra1-a"], start=START, end=None, meter="volume", quantity="100", price="0.0002"
    )
    statement_close(organization=org, month=MARCH, now=APRIL_2 + timedelta(days=1))
    stored = Statement.objects.get(pk=closed.pk)
    assert list(stored.lines.values_list("meter", "quantity_hours", "cost")) == before
    assert stored.total == closed.total
    assert stored.content_hash == closed.content_hash
    assert stored.hash_matches()
    # A fresh build would differ: the statement really is frozen, not merely unaffected.
    assert statement_build(organization=org, month=MARCH, now=APRIL_2).total > stored.total


def test_renaming_the_project_or_organization_leaves_a_closed_statement_as_it_was(closed, org, project):
    project.name = "Renamed shop"
    project.save()
    org.name = "Renamed Inc"
    org.save()
    stored = Statement.objects.get(pk=closed.pk)
    assert {line.project_name for line in stored.lines.all()} == {"Web shop"}
    assert stored.hash_matches()


def test_the_daily_task_closes_each_previous_month_once(org, march_usage):
    created_at(org, datetime(2026, 1, 15, tzinfo=UTC))
    newcomer = OrganizationFactory()  # created now: nothing of its own to close yet
    ProjectFactory(organization=newcomer)
    assert statements_close_due(now=APRIL_2) == 3  # January, February, March
    assert statements_close_due(now=APRIL_2 + timedelta(hours=1)) == 0
    months = list(Statement.objects.filter(organization=org).values_list("month", "status"))
    assert sorted(months) == [
        (date(2026, 1, 1), "closed"),
        (date(2026, 2, 1), "closed"),
        (date(2026, 3, 1), "closed"),
    ]
    assert not Statement.objects.filter(organization=newcomer).exists()
    assert Statement.objects.get(organization=org, month=date(2026, 2, 1)).total == 0
    # A month later it closes April, and only April.
    assert statements_close_due(now=datetime(2026, 5, 1, 0, 20, tzinfo=UTC)) == 1


def test_the_beat_task_runs_the_service(org, march_usage):
    created_at(org, datetime(2026, 2, 20, tzinfo=UTC))
    tasks.close_months()  # called directly, as the worker would
    tasks.close_months()
    assert Statement.objects.filter(organization=org, status=StatementStatus.CLOSED).count() >= 2
    assert Statement.objects.filter(organization=org).values("month").distinct().count() == (
        Statement.objects.filter(organization=org).count()
    )
