"""Statements pages: list, detail, CSV; owners and admins only; bad months are a 404."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.statements.selectors import first_of_month
from portal.statements.services import statement_close
from tests.factories import ProjectFactory
from tests.statements.helpers import created_at, make_segment


@pytest.fixture
def history(org, project, catalog, last_month):
    """Usage last month and this month; last month closed, the organization a year old."""
    start, end = last_month
    created_at(org, start - timedelta(days=300))
    make_segment(project, catalog["fra1-a"], start=start + timedelta(days=1), end=start + timedelta(days=3))
    make_segment(
        project, catalog["fra1-a"], start=start, end=None, meter="disk", quantity="50", price="0.000137"
    )
    closed = statement_close(organization=org, month=start.date(), now=end + timedelta(minutes=20))
    return {"closed": closed, "month": start.date(), "current": first_of_month(timezone.now())}


def _detail(org, month, name="statements:statement_detail"):
    return reverse(name, args=[org.slug, month.year, month.month])


def test_the_list_shows_closed_months_and_the_live_current_month(history, org, owner, client_as):
    response = client_as(owner).get(reverse("statements:statement_list", args=[org.slug]))
    assert response.status_code == 200
    body = response.content.decode()
    assert history["closed"].month.strftime("%B %Y") in body
    assert history["current"].strftime("%B %Y") in body
    assert "Not final" in body
    assert f"{history['closed'].total:.2f}" in body
    assert body.index(history["current"].strftime("%B %Y")) < body.index(history["month"].strftime("%B %Y"))


def test_a_closed_statement_shows_its_lines_total_and_hash(history, org, admin_user, client_as):
    response = client_as(admin_user).get(_detail(org, history["month"]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Web shop" in body and "Compute" in body and "Server disks" in body
    assert history["closed"].content_hash in body
    assert "Matches the stored statement" in body
    assert "Not final" not in body


def test_the_current_month_is_a_labelled_preview(history, org, owner, client_as):
    response = client_as(owner).get(_detail(org, history["current"]))
    assert response.status_code == 200
    assert "Preview, not final" in response.content.decode()


def test_the_csv_of_a_closed_statement_is_its_hashed_content(history, org, owner, client_as):
    response = client_as(owner).get(_detail(org, history["month"], "statements:statement_csv"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        f'attachment; filename="statement-acme-{history["month"]:%Y-%m}.csv"'
    )
    text = response.content.decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Statement", "Acme Research"]
    assert rows[1] == ["Month", f"{history['month']:%Y-%m}"]
    assert rows[2] == ["Currency", "EUR"]
    assert rows[3][:2] == ["Status", "closed"]
    assert rows[5] == ["Project", "Meter", "Unit", "Quantity", "Cost"]
    assert rows[6] == ["Web shop", "compute", "hours", "48.0000", "0.528000"]
    assert rows[7][:3] == ["Web shop", "disk", "GiB-hours"]
    assert rows[8] == ["Total", "", "", "", f"{history['closed'].total:.2f}"]
    assert rows[9] == ["SHA-256 of all lines above", history["closed"].content_hash]
    # The check the page describes: everything but the last line hashes to the printed value.
    without_last = text[: text.rstrip("\n").rfind("\n") + 1]
    assert hashlib.sha256(without_last.encode()).hexdigest() == history["closed"].content_hash


def test_the_csv_of_the_current_month_says_it_is_not_final(history, org, owner, client_as):
    response = client_as(owner).get(_detail(org, history["current"], "statements:statement_csv"))
    assert response.status_code == 200
    assert "-preview.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[3][:2] == ["Status", "preview, not final"]
    assert "SHA-256" not in response.content.decode()


@pytest.mark.parametrize("name", ["statements:statement_detail", "statements:statement_csv"])
@pytest.mark.parametrize(
    "year,month", [(2026, 13), (2026, 0), (0, 1), (99999, 1), (9999, 12), (1999, 12)], ids=str
)
def test_a_month_that_is_not_a_month_or_has_no_statement_is_a_404(
    history, org, owner, client_as, name, year, month
):
    url = reverse(name, kwargs={"org_slug": org.slug, "year": year, "month": month})
    assert client_as(owner).get(url).status_code == 404


def test_a_future_month_is_a_404(history, org, owner, client_as):
    future = history["current"] + timedelta(days=40)
    assert client_as(owner).get(_detail(org, future)).status_code == 404


@pytest.mark.parametrize("name", ["statements:statement_detail", "statements:statement_csv"])
def test_members_and_viewers_may_not_read_statements(history, org, member, viewer, client_as, name):
    for user in (member, viewer):
        response = client_as(user).get(_detail(org, history["month"], name))
        assert response.status_code == 403
        assert b"Owner or Admin" in response.content
    assert client_as(member).get(reverse("statements:statement_list", args=[org.slug])).status_code == 403


def test_an_outsider_gets_a_404(history, org, outsider, client_as):
    client = client_as(outsider)
    assert client.get(reverse("statements:statement_list", args=[org.slug])).status_code == 404
    assert client.get(_detail(org, history["month"])).status_code == 404
    assert client.get(_detail(org, history["month"], "statements:statement_csv")).status_code == 404


def test_statements_are_read_only(history, org, owner, client_as):
    assert client_as(owner).post(_detail(org, history["month"])).status_code == 405


def test_the_sidebar_offers_statements_only_to_those_who_may_read_them(
    history, org, owner, member, client_as
):
    url = reverse("tenancy:org_dashboard", args=[org.slug])
    assert b"Statements" in client_as(owner).get(url).content
    assert b"Statements" not in client_as(member).get(url).content


def test_an_absurd_year_is_a_404_not_a_500(org, owner, client_as):
    url = f"/o/{org.slug}/statements/99999999999999999999-1/"
    assert client_as(owner).get(url).status_code == 404


def test_lines_and_subtotals_add_up_to_the_total_as_shown(org, project, owner, catalog, last_month, client_as):
    """Three projects of 0.0037 each: a total of 0.01 is not shown over lines of 0.00."""
    start, end = last_month
    created_at(org, start - timedelta(days=300))
    projects = [project] + [ProjectFactory(organization=org, name=f"P{i}", slug=f"p{i}") for i in (2, 3)]
    for p in projects:  # 20 minutes at 0.0110 an hour: 0.0037
        make_segment(p, catalog["fra1-a"], start=start + timedelta(days=1), end=start + timedelta(days=1, minutes=20))
    statement_close(organization=org, month=start.date(), now=end + timedelta(minutes=20))

    body = client_as(owner).get(_detail(org, start.date())).content.decode()

    table = body[body.index('<table class="table table-statement">') :]
    lines = [Decimal(v) for v in re.findall(r'</span></td>\s*<td class="num">([\d.]+)</td>', table)]
    subtotals = [Decimal(v) for v in re.findall(r'Subtotal</td><td></td><td class="num">([\d.]+)</td>', table)]
    total = Decimal(re.search(r"<tfoot>.*?<strong>([\d.]+)</strong>", table, re.S).group(1))
    assert total == Decimal("0.01")
    assert len(lines) == 3 and sum(lines) == total and sum(subtotals) == total
