"""The launch guard: off / warn / approval / block, for an owner and a member, under and over budget."""

from __future__ import annotations

from decimal import Decimal

import pytest

from portal.budgets.guard import budget_guard
from portal.budgets.models import GuardMode
from tests.budgets.conftest import at

# A 100.00 budget, nothing spent, the whole of March (744 h) ahead.
UNDER = Decimal("0.10")  # 74.40 by the end of the month
OVER = Decimal("0.20")  # 148.80

# (mode, role, added) -> (allowed, needs_approval, says something)
MATRIX = {
    (GuardMode.OFF, "owner", UNDER): (True, False, False),
    (GuardMode.OFF, "owner", OVER): (True, False, False),
    (GuardMode.OFF, "member", UNDER): (True, False, False),
    (GuardMode.OFF, "member", OVER): (True, False, False),
    (GuardMode.WARN, "owner", UNDER): (True, False, False),
    (GuardMode.WARN, "owner", OVER): (True, False, True),
    (GuardMode.WARN, "member", UNDER): (True, False, False),
    (GuardMode.WARN, "member", OVER): (True, False, True),
    (GuardMode.APPROVAL, "owner", UNDER): (True, False, False),
    (GuardMode.APPROVAL, "owner", OVER): (True, False, True),
    (GuardMode.APPROVAL, "member", UNDER): (True, False, False),
    (GuardMode.APPROVAL, "member", OVER): (False, True, True),
    (GuardMode.BLOCK, "owner", UNDER): (True, False, False),
    (GuardMode.BLOCK, "owner", OVER): (False, False, True),
    (GuardMode.BLOCK, "member", UNDER): (True, False, False),
    (GuardMode.BLOCK, "member", OVER): (False, False, True),
}


@pytest.mark.parametrize(("mode", "role", "added"), list(MATRIX), ids=lambda v: str(v))
def test_guard_matrix(mode, role, added, project, owner, member, budget, catalog):
    budget("100", guard=mode)
    user = {"owner": owner, "member": member}[role]
    result = budget_guard(project, added, user, now=at(1))
    assert (result.allowed, result.needs_approval, bool(result.message)) == MATRIX[(mode, role, added)]


def test_messages_say_what_to_do(project, owner, member, admin_user, budget, catalog):
    budget("100", guard=GuardMode.APPROVAL)
    refused = budget_guard(project, OVER, member, now=at(1))
    assert refused.message == (
        "This launch takes Web shop's forecast for this month to 148.80 EUR, 149 % of its 100.00 EUR "
        "budget. Launches over budget need an owner's approval: ask an owner of Acme Research to launch "
        "it, or to raise the budget."
    )
    assert not budget_guard(project, OVER, admin_user, now=at(1)).allowed  # admins are not owners
    assert "as an owner, you may go ahead" in budget_guard(project, OVER, owner, now=at(1)).message
    budget("100", guard=GuardMode.BLOCK)
    assert "are blocked in this project" in budget_guard(project, OVER, owner, now=at(1)).message
    assert budget_guard(project, OVER, owner, now=at(1)).impact.percent == "149"


def test_what_already_runs_counts(project, member, segment, budget):
    segment("0.10", at(1))  # 74.40 by the end of March already
    budget("100", guard=GuardMode.BLOCK)
    assert budget_guard(project, Decimal("0.03"), member, now=at(1)).allowed  # 96.72
    assert not budget_guard(project, Decimal("0.04"), member, now=at(1)).allowed  # 104.16


def test_without_a_budget_everything_is_allowed(project, member, catalog):
    result = budget_guard(project, Decimal(1000), member)
    assert (result.allowed, result.needs_approval, result.message, result.impact) == (True, False, "", None)
