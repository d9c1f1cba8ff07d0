"""What a kind of operation is: the functions the runner calls for it (see `OPERATIONS`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from portal.compute.backends import BackendError, ComputeBackend
from portal.compute.models import Operation


class Progress(StrEnum):
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


# Per operation, in the order given: what the cloud answered, or the error for that one alone.
Answers = list[object]


def _nothing(*args) -> None:
    return None


def _never(op: Operation) -> bool:
    return False


@dataclass(frozen=True)
class Kind:
    """One kind of operation. Every function takes a list of operations of this kind in one zone
    (or one operation, where it says so) and answers one item per operation, in order."""

    # Ask the cloud; an answer per operation (an error is that operation's alone).
    submit: Callable[[ComputeBackend, list[Operation]], Answers]
    # Look at how it is going: the target's state in the cloud per operation.
    look: Callable[[ComputeBackend, list[Operation]], Answers]
    # One operation and what `look` answered for it: done, still waiting, or failed (with why).
    progress: Callable[[Operation, object], tuple[Progress, str]]
    # Finish those done, with what `look` answered: close them and change their targets, in one
    # transaction (`Operation.objects.close_open` tells which another delivery closed first).
    succeed: Callable[[list[tuple[Operation, object]]], None]
    # Finish one that failed, with the customer's message and the operator's detail.
    fail: Callable[[Operation, str, str], None]
    # Before the first step: e.g. a new server shows "provisioning".
    started: Callable[[list[Operation]], None] = _nothing
    # The cloud accepted these (with its answers): e.g. record the new server's id.
    submitted: Callable[[list[tuple[Operation, object]]], None] = _nothing
    # The target went away while this was under way (a server terminated while being created) ...
    cancelled: Callable[[Operation], bool] = _never
    # ... then, instead of the next step: undo what reached the cloud, and close the operation.
    cancel: Callable[[ComputeBackend, Operation], None] = _nothing
    # NotFound from `look` means the operation is finished (a delete), not that it failed.
    gone_is_done: bool = False
    gone_message: str = "The server no longer exists in the cloud."


def each(operations: Sequence[Operation], call: Callable[[Operation], object]) -> Answers:
    """`call` for every operation in turn, an error being that operation's answer: the default
    way to make a list of single calls for a cloud without bulk ones."""
    answers: Answers = []
    for op in operations:
        try:
            answers.append(call(op))
        except BackendError as error:
            answers.append(error)
    return answers
