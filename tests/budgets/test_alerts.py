"""Budget e-mails: once per threshold and month, to the owners only, idempotent, and again next month."""

from __future__ import annotations

from decimal import Decimal

import pytest

from portal.budgets import alerts
from portal.budgets.alerts import budgets_check_all
from portal.budgets.models import AlertKind, BudgetAlert
from portal.budgets.selectors import budget_status
from portal.budgets.services import budget_set
from portal.tenancy.access import project_access
from tests.budgets.conftest import at, rolled


@pytest.fixture
def check(django_capture_on_commit_callbacks, mailoutbox):
    """Run the beat task's work at `now` (rollups brought up to date first); the mail it sent."""

    def run(now):
        before = len(mailoutbox)
        with django_capture_on_commit_callbacks(execute=True):
            budgets_check_all(now=rolled(now))
        return mailoutbox[before:]

    return run


def _kinds(project, month=3) -> set[str]:
    return set(BudgetAlert.objects.filter(project=project, month__month=month).values_list("kind", flat=True))


def test_each_threshold_once_and_again_next_month(project, owner, admin_user, member, segment, budget, check):
    budget("100")
    segment("1.00", at(1), at(3, 7))  # 55.00
    segment("1.00", at(5), at(6, 6))  # 30.00 more: 85.00
    segment("0.10", at(8), at(1, month=4))  # 0.10 an hour for the rest of March
    segment("1.00", at(10), at(10, 20))  # 20.00 more: over 100
    segment("1.00", at(1, month=4), at(3, 2, month=4))  # April: 50.00

    sent = check(at(4))
    assert [m.to for m in sent] == [["owner@example.com"]]  # owners only: not the admin or member
    assert sent[0].subject == "Web shop has used 50 % of its budget for March"
    assert "Spent so far:  55.00 EUR (55.0 %)" in sent[0].body
    assert "http://127.0.0.1:8000/o/acme/p/web-shop/" in sent[0].body  # usage page (or overview)
    assert "http://127.0.0.1:8000/o/acme/p/web-shop/budget/" in sent[0].body
    assert check(at(4, 1)) == []  # the task runs again: nothing new
    assert _kinds(project) == {AlertKind.SPENT_50}

    sent = check(at(7))
    assert [m.subject for m in sent] == ["Web shop has used 80 % of its budget for March"]

    sent = check(at(9))  # 87.40 spent; 0.10 an hour for 552 h left: 142.60
    assert [m.subject for m in sent] == ["Web shop is heading over its budget for March"]
    assert "will cost 142.60 EUR by the end of March: 142.6 % of its budget" in sent[0].body

    sent = check(at(11))
    assert [m.subject for m in sent] == ["Web shop has used up its budget for March"]
    assert check(at(20)) == [] and check(at(31, 23)) == []
    assert _kinds(project) == {
        AlertKind.SPENT_50,
        AlertKind.SPENT_80,
        AlertKind.SPENT_100,
        AlertKind.FORECAST_OVER,
    }

    sent = check(at(4, month=4))  # a new month: 50.00 of 100 in April
    assert [m.subject for m in sent] == ["Web shop has used 50 % of its budget for April"]
    assert _kinds(project, month=4) == {AlertKind.SPENT_50}
    assert check(at(4, 1, month=4)) == []
    assert BudgetAlert.objects.count() == 5


def test_thresholds_crossed_together_go_out_in_one_email(project, owner, segment, budget, check):
    segment("1.00", at(1), at(4, 13))  # 85.00
    segment("0.10", at(4))  # still running: the forecast goes over too
    budget("100")  # set late: 50 %, 80 % and the forecast are all news
    sent = check(at(5))
    assert [m.subject for m in sent] == [
        "Web shop has used 80 % of its budget for March and is heading over it"
    ]
    assert _kinds(project) == {AlertKind.SPENT_50, AlertKind.SPENT_80, AlertKind.FORECAST_OVER}
    assert check(at(6)) == []


def test_every_owner_gets_their_own_copy(org, project, owner, segment, budget, check):
    from tests.factories import MembershipFactory, UserFactory

    MembershipFactory(organization=org, role="owner", user=UserFactory(email="second@example.com"))
    segment("1.00", at(1), at(3, 7))
    budget("100")
    assert sorted(m.to[0] for m in check(at(4))) == ["owner@example.com", "second@example.com"]


def test_a_second_worker_cannot_claim_an_alert_again(project, segment, budget):
    segment("1.00", at(1), at(3, 7))
    found = budget("100")
    status = budget_status(project, now=rolled(at(4)), budget=found)
    assert alerts._claim(project, AlertKind.SPENT_50, status, at(4)) is True
    assert alerts._claim(project, AlertKind.SPENT_50, status, at(4)) is False
    assert BudgetAlert.objects.count() == 1


def test_raising_the_budget_rearms_the_alerts_it_makes_untrue(
    project, owner, segment, budget, check, django_capture_on_commit_callbacks
):
    segment("1.00", at(1), at(3, 7))  # 55.00
    segment("1.00", at(5), at(7, 2))  # 50.00 more: 105.00
    budget("100")
    assert len(check(at(4))) == 1
    access = project_access(owner, project.organization.slug, project.slug)
    budget_set(access=access, amount=Decimal("200"), guard="off", now=at(4, 1))
    assert _kinds(project) == set()  # 55 is not 50 % of 200
    sent = check(at(8))  # 105.00 of 200
    assert [m.subject for m in sent] == ["Web shop has used 50 % of its budget for March"]


def test_no_budget_no_alerts(project, owner, segment, check):
    segment("5.00", at(1), at(5))
    assert check(at(6)) == []
