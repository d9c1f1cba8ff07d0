"""The budget page: everybody in the organization reads it, owners and admins change it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.budgets.models import Budget, BudgetAlert, GuardMode


def _url(project) -> str:
    return reverse("budgets:project_budget", args=[project.organization.slug, project.slug])


def _events():
    return AuditEvent.objects.filter(action=AuditAction.BUDGET_CHANGED)


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_set_a_budget(role, project, users, client_as, catalog):
    response = client_as(users[role]).post(_url(project), {"amount": "500", "guard": "approval"})
    assert response.status_code == 302 and response["Location"] == _url(project)
    budget = Budget.objects.get(project=project)
    assert (budget.amount, budget.guard, budget.updated_by) == (Decimal("500.00"), "approval", users[role])
    event = _events().get()
    assert event.actor == users[role]
    assert event.changes == {"amount": [None, "500.00"], "guard": [None, "approval"]}


def test_the_same_post_again_changes_nothing(project, owner, client_as, catalog):
    client = client_as(owner)
    client.post(_url(project), {"amount": "500.00", "guard": "warn"})
    client.post(_url(project), {"amount": "500", "guard": "warn"})
    assert _events().count() == 1
    client.post(_url(project), {"amount": "750", "guard": "warn"})
    assert _events().first().changes == {"amount": ["500.00", "750.00"]}


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_read_but_cannot_change(role, project, users, client_as, budget, catalog):
    budget("300", guard=GuardMode.BLOCK)
    client = client_as(users[role])
    page = client.get(_url(project))
    assert page.status_code == 200
    html = page.content.decode()
    assert "300.00 EUR" in html and "<meter" in html
    assert "Nobody may launch what would take the forecast over the budget." in html
    assert 'name="amount"' not in html
    refused = client.post(_url(project), {"amount": "1", "guard": "off"})
    assert refused.status_code == 403
    assert client.post(_url(project), {"action": "remove"}).status_code == 403
    assert Budget.objects.get(project=project).amount == Decimal("300.00")


def test_outsiders_see_nothing(project, outsider, client_as, budget, catalog):
    budget("300")
    client = client_as(outsider)
    assert client.get(_url(project)).status_code == 404
    assert client.post(_url(project), {"amount": "1", "guard": "off"}).status_code == 404


def test_other_methods_are_refused(project, owner, client_as, catalog):
    assert client_as(owner).put(_url(project)).status_code == 405


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"amount": "", "guard": "off"}, "Enter the monthly amount."),
        ({"amount": "lots", "guard": "off"}, "Enter an amount such as 500 or 1250.50."),
        ({"amount": "0", "guard": "off"}, "The budget must be more than zero"),
        ({"amount": "-5", "guard": "off"}, "The budget must be more than zero"),
        ({"amount": "10.005", "guard": "off"}, "Use at most two decimals (cents)."),
        ({"amount": "99999999999", "guard": "off"}, "more than this portal can track"),
        ({"amount": "1e30", "guard": "off"}, "more than this portal can track"),
        ({"amount": "NaN", "guard": "off"}, "Enter an amount such as 500 or 1250.50."),
        ({"amount": "Infinity", "guard": "off"}, "Enter an amount such as 500 or 1250.50."),
        ({"amount": "100", "guard": "maybe"}, "Choose one of the options listed."),
        ({"amount": "100"}, "Choose what happens at launch."),
    ],
)
def test_bad_input_is_a_400_that_says_why(data, message, project, owner, client_as, catalog):
    response = client_as(owner).post(_url(project), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Budget.objects.exists() and not _events().exists()


def test_remove_the_budget(project, owner, client_as, budget, catalog):
    budget("300", guard=GuardMode.WARN)
    client = client_as(owner)
    assert client.post(_url(project), {"action": "remove"}).status_code == 302
    assert not Budget.objects.exists()
    assert _events().get().changes == {"amount": ["300.00", None], "guard": ["warn", None]}
    client.post(_url(project), {"action": "remove"})  # again: nothing to remove
    assert _events().count() == 1


def test_the_page_shows_spend_forecast_and_this_months_alerts(project, viewer, client_as, budget, catalog):
    from django.utils import timezone

    budget("300")
    now = timezone.now()
    BudgetAlert.objects.create(
        project=project,
        month=now.date().replace(day=1),
        kind="spent_50",
        sent_at=now,
        amount=Decimal(300),
        spent=Decimal("151.20"),
        forecast=Decimal("290.00"),
    )
    html = client_as(viewer).get(_url(project)).content.decode()
    assert "Spent so far" in html and "Forecast for" in html
    assert "50 % spent" in html and "151.20 EUR" in html


def test_without_a_budget_the_page_invites_one(project, owner, viewer, client_as, catalog):
    assert "Set a budget" in client_as(owner).get(_url(project)).content.decode()
    assert (
        "Owners and admins of Acme Research can set one."
        in client_as(viewer).get(_url(project)).content.decode()
    )


def test_the_sidebar_links_to_it(project, member, client_as, catalog):
    page = client_as(member).get(reverse("tenancy:project_dashboard", args=["acme", "web-shop"]))
    assert f'href="{_url(project)}"' in page.content.decode()


@pytest.mark.parametrize("amount", ["1E+30", "0", "-5", "NaN", "Infinity", "10000000000.00"])
def test_the_service_refuses_amounts_outside_the_bounds(access, amount):
    """The page and the API refuse these with a message; the service must not get as far as the
    arithmetic (a 10^30 budget raised decimal.InvalidOperation) or the database."""
    from portal.budgets import services

    with pytest.raises(ValueError, match=r"A budget is 0\.01 to 9999999999\.99"):
        services.budget_set(access=access, amount=Decimal(amount), guard="off")
    assert not Budget.objects.exists()
