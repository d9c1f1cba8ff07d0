from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from celery import shared_task

from portal.compute import reconciler, runner
from portal.compute.backends import BackendError, get_backend
from portal.compute.models import Action

# Steps due at once that one message runs before handing the rest back to the queue.
INLINE_STEPS = 3


def step_messages(steps: Iterable[tuple[str, str, str, str]]) -> list[list[list[str]]]:
    """`(operation id, step token, backend name, action)` as `operations_advance` messages.

    Creations go as many to a message as their backend takes in one call; any other action (a
    slow call each, handled one by one) and any zone whose backend is not configured, one per
    message."""
    groups = defaultdict(list)
    messages = []
    for operation_id, token, backend_name, action in steps:
        if action == Action.CREATE:
            groups[backend_name].append([str(operation_id), token])
        else:
            messages.append([[str(operation_id), token]])
    for backend_name, pairs in groups.items():
        try:
            size = max(1, get_backend(backend_name).batch_size)
        except BackendError:
            size = 1  # the step itself reports the missing backend, per operation
        messages += [pairs[n : n + size] for n in range(0, len(pairs), size)]
    return messages


@shared_task(
    acks_late=True,  # safe: every step is idempotent (see runner)
    reject_on_worker_lost=True,  # a killed worker's message goes back on the queue
    time_limit=120,
    soft_time_limit=90,
    ignore_result=True,
)
def operation_advance(operation_id: str, token: str | None = None) -> None:
    """Run one step of an operation, then schedule the next check (never sleep in a worker).
    Messages the reconciler and admin send; launches and actions send `operations_advance`."""
    step = runner.advance(operation_id, token)
    if not step.done:
        operation_advance.apply_async((operation_id, step.token), countdown=step.again_in)


@shared_task(
    acks_late=True,  # safe: every step is idempotent (see runner)
    reject_on_worker_lost=True,  # a killed worker's message goes back on the queue
    time_limit=120,
    soft_time_limit=90,
    ignore_result=True,
)
def operations_advance(steps: list[list[str]]) -> None:
    """One step of several operations (`[operation id, token]` pairs, e.g. the servers of one
    launch), then the next checks: operations due at the same moment travel in one message, and
    those due at once (a cloud that answers immediately) are stepped here, a few times at most."""
    for _ in range(INLINE_STEPS):
        following = defaultdict(list)
        for operation_id, step in runner.advance_many(steps).items():
            if not step.done:
                following[step.again_in].append([operation_id, step.token])
        steps = following.pop(0, [])
        for again_in, group in following.items():
            operations_advance.apply_async((group,), countdown=again_in)
        if not steps:
            return
    operations_advance.apply_async((steps,), countdown=0)


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240, ignore_result=True)
def reconcile() -> None:
    """Periodic (celery beat): re-enqueue lost work, fail stuck operations, fix drift, flag orphans."""
    reconciler.reconcile()
