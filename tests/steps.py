"""Operations stepped in the test's own process, as the worker's messages would step them (the
same `runner.advance`, with the step token each message would carry), without waiting."""

from __future__ import annotations

import time

from portal.compute import runner
from portal.compute.models import Operation


def _tokens(operations) -> list[tuple[str, str]]:
    ids = [str(getattr(op, "pk", op)) for op in operations]
    tokens = dict(Operation.objects.filter(pk__in=ids).values_list("pk", "step_token"))
    return [(op_id, tokens[next(pk for pk in tokens if str(pk) == op_id)]) for op_id in ids]


def step(*operations) -> dict[str, runner.Step]:
    """One step of these operations (or ids) together, as one message carrying their tokens."""
    return runner.advance(_tokens(operations))


def drive(*operations, limit: int = 50, pause: float = 0) -> None:
    """Step the operations (or ids) together until every one is finished."""
    steps = _tokens(operations)
    for _ in range(limit):
        result = runner.advance(steps)
        steps = [(op_id, s.token) for op_id, s in result.items() if not s.done]
        if not steps:
            return
        time.sleep(pause)
    raise AssertionError(f"operations still unfinished after {limit} steps: {[op_id for op_id, _ in steps]}")
