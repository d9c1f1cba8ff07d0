"""The steps of operations, as the Celery task runs them, for every kind and every backend.

One step of a list of operations: claim them (a conditional UPDATE on their step tokens), group
them by backend, kind and phase, make one call to the backend per group — submit the request, or
look at how it is going — and finish those done or failed. One operation is a list of one. What
a kind asks the cloud and what it leaves behind is its entry in `portal.compute.operations`.

Safe to run twice: every change of state is a conditional UPDATE, creation adopts a server
already made with the instance's UUID, and no transaction is open while the cloud is called.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.compute.backends import BackendError, NotFound, Transient, get_backend
from portal.compute.crashpoints import CrashPoint, crash_point
from portal.compute.models import Action, Operation
from portal.compute.operations import OPERATIONS, Kind, Progress
from portal.compute.operations.launch_networks import join_ready
from portal.compute.operations.launch_volumes import attach_ready

log = logging.getLogger(__name__)

DEADLINE_MESSAGE = "This took far too long, so we stopped waiting. Please try again."
GAVE_UP_MESSAGE = "The cloud did not answer after several tries. Please try again in a few minutes."


@dataclass(frozen=True)
class Step:
    """What the task does next for one operation: nothing (done), or run again in `again_in`
    seconds with `token`."""

    again_in: float | None = None
    token: str | None = None

    @property
    def done(self) -> bool:
        return self.again_in is None


DONE = Step()


# One phase of a group's step: (backend name, kind, operations) -> the next step of each.
PhaseStep = Callable[[str, Kind, list[Operation]], dict[str, Step]]


class Phase(StrEnum):
    EXPIRED = "expired"  # past its deadline: fail it
    CANCEL = "cancel"  # its target went away meanwhile
    SUBMIT = "submit"  # not yet accepted by the cloud
    LOOK = "look"  # accepted: is it finished?


def advance(steps: Iterable[tuple[str, str]]) -> dict[str, Step]:
    """One step of each operation, each with the step token its message carried: the next step
    of each (DONE for those finished, or whose step another message holds)."""
    steps = [(str(operation_id), token) for operation_id, token in steps]
    token, operations = Operation.objects.claim(steps)
    result = dict.fromkeys((operation_id for operation_id, _ in steps), DONE)
    groups: dict[tuple[str, str, Phase], list[Operation]] = defaultdict(list)
    now = timezone.now()
    for op in operations:
        groups[(op.zone.backend, op.action, _phase(op, now))].append(op)
    for (backend_name, action, phase), group in groups.items():
        for operation_id, step in _isolated(PHASES[phase], backend_name, OPERATIONS[action], group).items():
            result[operation_id] = DONE if step.done else Step(step.again_in, token)
    result.update(_launch_attaches(operations, result))
    return result


def _launch_attaches(operations: list[Operation], result: dict[str, Step]) -> dict[str, Step]:
    """A server or a volume of a launch that just became ready: the attaches that waited for it,
    stepped next by this same message (the reconciler's sweep makes those a dead worker missed)."""
    made = [op for op in operations if result[str(op.pk)].done]
    servers = [op.instance_id for op in made if op.action == Action.CREATE]
    volumes = [op.volume_id for op in made if op.action == Action.VOLUME_CREATE]
    if not (servers or volumes):
        return {}
    try:
        attaches = attach_ready(instance_ids=servers, volume_ids=volumes) + join_ready(instance_ids=servers)
    except Exception:  # the reconciler's sweep makes them later; the finished steps stand
        log.exception("launch volumes: attach failed to start", extra={"servers": servers})
        return {}
    return {str(op.pk): Step(0, op.step_token) for op in attaches}


def _phase(op: Operation, now) -> Phase:
    if now > op.deadline:
        return Phase.EXPIRED
    if OPERATIONS[op.action].cancelled(op):
        return Phase.CANCEL
    return Phase.SUBMIT if op.submitted_at is None else Phase.LOOK


def _isolated(step: PhaseStep, backend_name: str, kind: Kind, operations: list[Operation]) -> dict[str, Step]:
    """Run one phase's `step` for these operations. An unexpected error is theirs alone: it is logged, they
    are left to the reconciler once their claim's lease runs out, and the rest of the message goes
    on. Out of time, the message stops (the reconciler takes over what it did not reach)."""
    try:
        return step(backend_name, kind, operations)
    except SoftTimeLimitExceeded:
        raise
    except Exception:  # a bug or a database error in one step must not stall the message's others
        log.exception("operation step failed", extra={"operations": [str(op.pk) for op in operations]})
        return {str(op.pk): DONE for op in operations}


def _call(backend_name: str, call: Callable, count: int) -> list:
    """One backend call answering per operation; a call that fails as a whole (or a zone whose
    backend is not configured) is every operation's error, each handled on its own."""
    try:
        return call(get_backend(backend_name))
    except BackendError as error:
        return [error] * count


def _expired(backend_name: str, kind: Kind, ops: list[Operation]) -> dict[str, Step]:
    for op in ops:
        fail_operation(op, DEADLINE_MESSAGE, "deadline passed")
    return {str(op.pk): DONE for op in ops}


def _cancel(backend_name: str, kind: Kind, ops: list[Operation]) -> dict[str, Step]:
    steps = {}
    for op in ops:
        try:
            kind.cancel(get_backend(backend_name), op)
            steps[str(op.pk)] = DONE
        except BackendError as error:
            steps[str(op.pk)] = _after_error(kind, op, error)
    return steps


def _submit(backend_name: str, kind: Kind, ops: list[Operation]) -> dict[str, Step]:
    pending = Operation.objects.start(ops)
    if pending:
        kind.started(pending)
    crash_point(CrashPoint.BEFORE_CLOUD_CALL)
    answers = _call(backend_name, lambda backend: kind.submit(backend, ops), len(ops))
    crash_point(CrashPoint.AFTER_CLOUD_CALL)
    steps, accepted = {}, []
    for op, answer in zip(ops, answers, strict=True):
        if isinstance(answer, BackendError):
            steps[str(op.pk)] = _after_error(kind, op, answer)
        else:
            accepted.append((op, answer))
    if accepted:
        kind.submitted(accepted)
        Operation.objects.accepted([op for op, _ in accepted], _next_check())
        steps |= {str(op.pk): Step(settings.COMPUTE_POLL_SECONDS) for op, _ in accepted}
    return steps


def _look(backend_name: str, kind: Kind, ops: list[Operation]) -> dict[str, Step]:
    answers = _call(backend_name, lambda backend: kind.look(backend, ops), len(ops))
    steps, finished, waiting = {}, [], []
    for op, answer in zip(ops, answers, strict=True):
        if isinstance(answer, NotFound) and kind.gone_is_done:
            finished.append((op, None))
        elif isinstance(answer, BackendError):
            steps[str(op.pk)] = _after_error(kind, op, answer)
        else:
            progress, fault = kind.progress(op, answer)
            if progress == Progress.DONE:
                finished.append((op, answer))
            elif progress == Progress.FAILED:
                fail_operation(op, _failure_advice(op, fault), fault)
                steps[str(op.pk)] = DONE
            else:
                waiting.append(op)
    if waiting:
        Operation.objects.filter(pk__in=[op.pk for op in waiting]).update(next_check_at=_next_check())
        steps |= {str(op.pk): Step(settings.COMPUTE_POLL_SECONDS) for op in waiting}
    if finished:
        with transaction.atomic():
            # First of the callbacks run after the commit: before the e-mail is handed over.
            transaction.on_commit(lambda: crash_point(CrashPoint.AFTER_FINISH))
            kind.succeed(finished)
            crash_point(CrashPoint.DURING_FINISH)
        steps |= {str(op.pk): DONE for op, _ in finished}
    return steps


PHASES = {Phase.EXPIRED: _expired, Phase.CANCEL: _cancel, Phase.SUBMIT: _submit, Phase.LOOK: _look}


def _after_error(kind: Kind, op: Operation, error: BackendError) -> Step:
    """What one operation does after the cloud refused or failed its step."""
    if isinstance(error, Transient):
        delay = _backoff(op.attempts + 1)
        # The reconciler looks again if this retry's message is lost.
        attempts = op.retry_later(error.detail, timezone.now() + timedelta(seconds=delay + 30))
        if attempts > settings.COMPUTE_MAX_TRANSIENT_RETRIES:
            fail_operation(op, GAVE_UP_MESSAGE, f"gave up after {attempts} transient errors: {error.detail}")
            return DONE
        return Step(delay)
    if isinstance(error, NotFound):
        fail_operation(op, kind.gone_message, error.detail)
        return DONE
    fail_operation(op, error.user_message, error.detail)  # Rejected: permanent, in the customer's words
    return DONE


def fail_operation(op: Operation, message: str, detail: str) -> None:
    """Finish an operation as failed, once (a second call changes nothing): `message` is shown to
    the customer, `detail` to operators. The reconciler and admin call this too."""
    OPERATIONS[op.action].fail(op, message, detail)


def _failure_advice(op: Operation, fault: str) -> str:
    what = fault.rstrip(".") if fault else "The cloud reported an error"
    if op.action == "create":
        return f"{what}. Try launching it again; if it keeps failing, pick another image or zone."
    return f"{what}."


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped at a minute."""
    return random.uniform(1, min(60.0, 2.0**attempt))  # noqa: S311


def _next_check():
    # The reconciler re-enqueues an operation whose next check is long overdue (a lost message).
    return timezone.now() + timedelta(
        seconds=settings.COMPUTE_POLL_SECONDS + settings.COMPUTE_STEP_LEASE_SECONDS
    )


def step_messages(operations: Iterable[tuple[str, str, str]]) -> list[list[list[str]]]:
    """`(operation id, step token, backend name)` as the `operations_advance` messages to send:
    as many operations to a message as their backend takes in one call (`batch_size`: a cloud
    whose calls are slow takes one, so its operations are worked on in parallel); a zone whose
    backend is not configured, one per message (its step reports that, per operation)."""
    by_backend = defaultdict(list)
    for operation_id, token, backend_name in operations:
        by_backend[backend_name].append([str(operation_id), token])
    messages = []
    for backend_name, pairs in by_backend.items():
        try:
            size = max(1, get_backend(backend_name).batch_size)
        except BackendError:
            size = 1
        messages += [pairs[n : n + size] for n in range(0, len(pairs), size)]
    return messages
