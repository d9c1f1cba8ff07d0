"""Amounts as people read them: to the cent, in tables whose totals are the sum of their rows.

The rule, everywhere money is shown (usage pages, statements, a server's cost): a total is the
exact sum rounded once to the cent, and the rows under it are rounded to the cent *so that they
add up to it* (largest remainder: each row is its exact value rounded down or up, and the rows
with the largest fractions of a cent take the missing cents). Rounding each row on its own made
a total of 0.01 over rows of 0.00.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def money(value) -> Decimal:
    return Decimal(value or 0).quantize(CENT, ROUND_HALF_UP)


def apportion(exact: Sequence, total: Decimal | None = None) -> list[Decimal]:
    """`exact` rounded to the cent so that they add up to `total` (default: their sum, rounded).

    `total` must lie between the sum of the values rounded down and rounded up, as a rounded
    (or itself apportioned) sum of the same values always does.
    """
    values = [Decimal(v or 0) for v in exact]
    target = money(sum(values, Decimal(0))) if total is None else Decimal(total)
    floors = [v.quantize(CENT, ROUND_FLOOR) for v in values]
    missing = int((target - sum(floors, Decimal(0))) / CENT)
    order = sorted(range(len(values)), key=lambda i: (-(values[i] - floors[i]), i))
    fractional = [i for i in order if values[i] != floors[i]]
    if not 0 <= missing <= len(fractional):
        raise ValueError(f"{target} is not a rounding of the sum of {values}")
    for i in fractional[:missing]:
        floors[i] += CENT
    return floors
