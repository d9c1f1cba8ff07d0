"""One step of an operation, as the Celery task runs it: submit to the cloud, or look at how it is
going. Safe to run twice: every change of state is a conditional UPDATE, creation adopts a server
already made with the instance's UUID, and no transaction is open while the cloud is called."""

from __future__ import annotations

import contextlib
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Case, CharField, F, JSONField, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.catalog.models import Flavor
from portal.compute import notify
from portal.compute.backends import (
    BackendError,
    BackendState,
    NotFound,
    ServerSpec,
    Transient,
    get_backend,
)
from portal.compute.models import (
    Action,
    FirewallRule,
    Instance,
    InstanceStatus,
    Operation,
    OperationState,
    Volume,
    VolumeStatus,
)
from portal.compute.models.instances import ACTIONS
from portal.metering.segments import sync_instance, sync_instances
from portal.tenancy.models import Project

log = logging.getLogger(__name__)
S = InstanceStatus
B = BackendState

# The instance status that mirrors a server state the cloud reports.
STATUS_FOR = {
    B.BUILDING: S.PROVISIONING,
    B.RUNNING: S.RUNNING,
    B.STOPPING: S.STOPPING,
    B.STOPPED: S.STOPPED,
    B.STARTING: S.STARTING,
    B.REBOOTING: S.REBOOTING,
    B.RESIZING: S.RESIZING,
    B.DELETING: S.TERMINATING,
    B.ERROR: S.ERROR,
}


@dataclass(frozen=True)
class Step:
    """What the task does next: stop (done), or run again in `again_in` seconds with `token`."""

    again_in: float | None = None
    token: str | None = None

    @property
    def done(self) -> bool:
        return self.again_in is None


DONE = Step()


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped at a minute."""
    return random.uniform(1, min(60.0, 2.0**attempt))  # noqa: S311


def _spec(instance: Instance) -> ServerSpec:
    return _specs([instance])[0]


def _specs(instances: list[Instance]) -> list[ServerSpec]:
    """What the cloud is asked to build, for several servers: keys and rules in one query each."""
    ids = [instance.pk for instance in instances]
    keys = defaultdict(list)
    for instance_id, public_key in (
        Instance.ssh_keys.through.objects.filter(instance_id__in=ids)
        .order_by("sshkey__name")
        .values_list("instance_id", "sshkey__public_key")
    ):
        keys[instance_id].append(public_key)
    rules = defaultdict(list)
    rule_sets = {instance.firewall_id for instance in instances} - {None}
    if rule_sets:
        for rule in FirewallRule.objects.filter(rule_set__in=rule_sets).values(
            "rule_set_id", "protocol", "port_from", "port_to", "source"
        ):
            rules[rule.pop("rule_set_id")].append(rule)
    return [
        ServerSpec(
            idempotency_key=str(instance.pk),
            name=instance.name,
            zone=instance.zone.code,
            flavor=instance.flavor.code,
            vcpus=instance.flavor.vcpus,
            ram_gib=instance.flavor.ram_gib,
            root_disk_gib=instance.root_disk_gib,
            image=instance.image.name,
            ssh_keys=tuple(keys[instance.pk]),
            user_data=instance.user_data,
            firewall_rules=tuple(rules[instance.firewall_id]) if instance.firewall_id else (),
        )
        for instance in instances
    ]


ACTIVE = [OperationState.PENDING, OperationState.RUNNING]


def claim(steps: list[tuple[str, str | None]]) -> tuple[str, list[Operation]]:
    """Take the next step of each operation whose message carries its current token.

    The token changes with every step, so a duplicate or late message (a redelivery, a message the
    reconciler already replaced) finds a stale token and does nothing: one chain of steps at most.
    The operations claimed together share the new token (their next message carries it) and are
    returned loaded. The claim also pushes `next_check_at` forward; if this worker dies mid-step,
    the reconciler starts a new chain once that time has passed.
    """
    new = uuid.uuid4().hex
    lease = timezone.now() + timedelta(seconds=settings.COMPUTE_STEP_LEASE_SECONDS)
    by_token = defaultdict(list)
    for operation_id, token in steps:
        by_token[token].append(operation_id)
    for token, ids in by_token.items():
        Operation.objects.filter(pk__in=ids, step_token=token, state__in=ACTIVE).update(
            step_token=new, next_check_at=lease
        )
    claimed = Operation.objects.select_related(
        "instance__zone", "instance__flavor", "instance__image"
    ).filter(pk__in=[operation_id for operation_id, _ in steps], step_token=new)
    return new, list(claimed)


def advance(operation_id: str, token: str | None = None) -> Step:
    """One step of one operation. Without a token (tests, admin tools) the current one is used."""
    return advance_many([(operation_id, token)])[str(operation_id)]


def advance_many(steps: Iterable[tuple[str, str | None]]) -> dict[str, Step]:
    """One step of each operation, each with the token its message carried: the next step of each
    (DONE for those finished, or whose step another message holds).

    Creations of several servers (one launch) are submitted, checked and finished together, in a
    fixed number of statements; anything else, and any server whose step goes differently (an
    error, a retry), takes the one-operation path."""
    steps = [(str(operation_id), token) for operation_id, token in steps]
    untokened = [operation_id for operation_id, token in steps if token is None]
    if untokened:
        current = dict(Operation.objects.filter(pk__in=untokened).values_list("pk", "step_token"))
        steps = [(op_id, token or current.get(uuid.UUID(op_id))) for op_id, token in steps]
    token, operations = claim(steps)
    result = dict.fromkeys((operation_id for operation_id, _ in steps), DONE)
    for operation_id, step in _advance_claimed(operations).items():
        result[operation_id] = DONE if step.done else Step(step.again_in, token)
    return result


def _advance_claimed(operations: list[Operation]) -> dict[str, Step]:
    steps: dict[str, Step] = {}
    submits, checks = defaultdict(list), defaultdict(list)
    now = timezone.now()
    for op in operations:
        instance = op.instance
        plain_create = (
            op.action == Action.CREATE
            and now <= op.deadline
            and instance.status not in (S.TERMINATING, S.TERMINATED)
        )
        if plain_create and op.submitted_at is None:
            submits[instance.zone.backend].append(op)
        elif plain_create and instance.backend_id:
            checks[instance.zone.backend].append(op)
        else:
            steps |= _isolated([op], lambda op=op: {str(op.pk): _advance_one(op)})
    for backend_name, group in submits.items():
        steps |= _isolated(group, lambda name=backend_name, group=group: _submit_creates(name, group))
    for backend_name, group in checks.items():
        steps |= _isolated(group, lambda name=backend_name, group=group: _check_creates(name, group))
    return steps


def _isolated(operations: list[Operation], step) -> dict[str, Step]:
    """Run `step` for these operations. An unexpected error is theirs alone: it is logged, they
    are left to the reconciler once their claim's lease runs out, and the rest of the message goes
    on. Out of time, the message stops (the reconciler takes over what it did not reach)."""
    try:
        return step()
    except SoftTimeLimitExceeded:
        raise
    except Exception:  # a bug or a database error in one step must not stall the message's others
        log.exception("operation step failed", extra={"operations": [str(op.pk) for op in operations]})
        return {str(op.pk): DONE for op in operations}


def _advance_one(op: Operation) -> Step:
    instance = op.instance
    now = timezone.now()
    if now > op.deadline:
        _fail(op, "This took far too long, so we stopped waiting. Please try again.", "deadline passed")
        return DONE
    if op.action == Action.CREATE and instance.status in (S.TERMINATING, S.TERMINATED):
        return _cancel_create(op, instance)
    _mark_running([op])

    backend = get_backend(instance.zone.backend)
    try:
        if op.submitted_at is None:
            _submit(op, instance, backend)
            Operation.objects.filter(pk=op.pk, submitted_at=None).update(
                submitted_at=timezone.now(), next_check_at=_next_check()
            )
            return Step(settings.COMPUTE_POLL_SECONDS)
        return _check(op, instance, backend)
    except BackendError as error:
        return _after_error(op, error)


def _mark_running(operations: list[Operation]) -> None:
    """Pending operations start running; a server being created shows as provisioning."""
    pending = [op for op in operations if op.state == OperationState.PENDING]
    if not pending:
        return
    Operation.objects.filter(pk__in=[op.pk for op in pending], state=OperationState.PENDING).update(
        state=OperationState.RUNNING
    )
    creating = [op.instance_id for op in pending if op.action == Action.CREATE]
    if creating:
        Instance.objects.filter(pk__in=creating, status=S.PENDING).update(
            status=S.PROVISIONING, updated_at=timezone.now()
        )
    for op in pending:
        op.state = OperationState.RUNNING


def _after_error(op: Operation, error: BackendError) -> Step:
    """What one operation does after the cloud refused or failed its step."""
    if isinstance(error, Transient):
        attempts = op.attempts + 1
        Operation.objects.filter(pk=op.pk).update(attempts=F("attempts") + 1, error_detail=error.detail)
        if attempts > settings.COMPUTE_MAX_TRANSIENT_RETRIES:
            _fail(
                op,
                "The cloud did not answer after several tries. Please try again in a few minutes.",
                f"gave up after {attempts} transient errors: {error.detail}",
            )
            return DONE
        delay = _backoff(attempts)
        Operation.objects.filter(pk=op.pk).update(
            next_check_at=timezone.now() + timedelta(seconds=delay + 30)
        )
        return Step(delay)
    if isinstance(error, NotFound):
        if op.action == Action.TERMINATE:
            _succeed(op, None)
            return DONE
        _fail(op, "The server no longer exists in the cloud.", error.detail)
        return DONE
    _fail(op, error.user_message, error.detail)  # Rejected: permanent, in the customer's words
    return DONE


def _submit_creates(backend_name: str, operations: list[Operation]) -> dict[str, Step]:
    """Ask the cloud for several servers at once; each server's error is handled on its own."""
    _mark_running(operations)
    specs = _specs([op.instance for op in operations])
    try:
        backend = get_backend(backend_name)
        results = backend.create_servers(specs)
    except BackendError as error:  # the call as a whole (or the zone's cloud) failed: each retries
        results = [error] * len(operations)
    steps, made = {}, {}
    for op, result in zip(operations, results, strict=True):
        if isinstance(result, BackendError):
            steps[str(op.pk)] = _after_error(op, result)
        else:
            made[op] = result
    if not made:
        return steps
    Instance.objects.filter(pk__in=[op.instance_id for op in made], backend_id="").update(
        backend_id=Case(
            *(When(pk=op.instance_id, then=Value(state.backend_id)) for op, state in made.items()),
            output_field=CharField(),
        )
    )
    for op, state in made.items():
        op.instance.backend_id = op.instance.backend_id or state.backend_id
    # Terminated while the cloud was creating it: don't leave the new server behind.
    cancelled = set(
        Instance.objects.filter(
            pk__in=[op.instance_id for op in made], status__in=[S.TERMINATING, S.TERMINATED]
        ).values_list("pk", flat=True)
    )
    for op, state in made.items():
        if op.instance_id in cancelled:
            # If this fails, the next step (a cancelled creation) finds the server and deletes it.
            with contextlib.suppress(BackendError):
                backend.delete_server(state.backend_id)
    Operation.objects.filter(pk__in=[op.pk for op in made], submitted_at=None).update(
        submitted_at=timezone.now(), next_check_at=_next_check()
    )
    return steps | {str(op.pk): Step(settings.COMPUTE_POLL_SECONDS) for op in made}


def _check_creates(backend_name: str, operations: list[Operation]) -> dict[str, Step]:
    """Look at several servers being created; finish those running, together."""
    try:
        results = get_backend(backend_name).get_servers([op.instance.backend_id for op in operations])
    except BackendError as error:
        results = [error] * len(operations)
    steps, running, waiting = {}, [], []
    for op, result in zip(operations, results, strict=True):
        if isinstance(result, BackendError):
            steps[str(op.pk)] = _after_error(op, result)
        elif result.state == B.ERROR:
            _fail(op, _failure_advice(op, result.fault), result.fault or "backend reports error")
            steps[str(op.pk)] = DONE
        elif result.state == B.RUNNING:
            running.append((op, result))
            steps[str(op.pk)] = DONE
        else:
            waiting.append(op)
            steps[str(op.pk)] = Step(settings.COMPUTE_POLL_SECONDS)
    if waiting:
        Operation.objects.filter(pk__in=[op.pk for op in waiting]).update(next_check_at=_next_check())
    if running:
        _succeed_creates(running)
    return steps


def _cancel_create(op: Operation, instance: Instance) -> Step:
    """Terminated while being created: make sure no server is left behind, then close quietly."""
    backend = get_backend(instance.zone.backend)
    try:
        found = backend.find_server(instance.zone.code, str(instance.pk))
        if found is not None:
            backend.delete_server(found.backend_id)
    except Transient:
        return Step(_backoff(op.attempts + 1))
    except BackendError:
        pass  # the reconciler reports anything left behind
    with transaction.atomic():
        if _finish(
            op,
            OperationState.FAILED,
            message="Cancelled: the server was terminated while it was being created.",
        ):
            notify.after_operation(op, instance)
    return DONE


def _next_check():
    # The reconciler re-enqueues an operation whose next check is long overdue (a lost message).
    return timezone.now() + timedelta(
        seconds=settings.COMPUTE_POLL_SECONDS + settings.COMPUTE_STEP_LEASE_SECONDS
    )


def _submit(op: Operation, instance: Instance, backend) -> None:
    """Ask the cloud to start, stop, reboot, resize or delete (creations: `_submit_creates`)."""
    backend_id = instance.backend_id
    if not backend_id:
        found = backend.find_server(instance.zone.code, str(instance.pk))
        if found is None:
            if op.action == Action.TERMINATE:
                return  # never reached the cloud: nothing to delete
            raise NotFound("The server was never created in the cloud.", "no backend id")
        backend_id = found.backend_id
        Instance.objects.filter(pk=instance.pk, backend_id="").update(backend_id=backend_id)
        instance.backend_id = backend_id
    if op.action == Action.START:
        backend.start_server(backend_id)
    elif op.action == Action.STOP:
        backend.stop_server(backend_id)
    elif op.action in (Action.REBOOT, Action.HARD_REBOOT):
        backend.reboot_server(backend_id, hard=op.action == Action.HARD_REBOOT)
    elif op.action == Action.RESIZE:
        flavor = Flavor.objects.get(pk=op.params["flavor_id"])
        backend.resize_server(backend_id, flavor=flavor.code, vcpus=flavor.vcpus, ram_gib=flavor.ram_gib)
    elif op.action == Action.TERMINATE:
        backend.delete_server(backend_id)


def _check(op: Operation, instance: Instance, backend) -> Step:
    if op.action == Action.TERMINATE and not instance.backend_id:
        _succeed(op, None)
        return DONE
    state = backend.get_server(instance.backend_id)
    if op.action == Action.TERMINATE:
        return Step(settings.COMPUTE_POLL_SECONDS)  # still there; NotFound ends it
    if state.state == B.ERROR:
        _fail(op, _failure_advice(op, state.fault), state.fault or "backend reports error")
        return DONE
    target = STATUS_FOR.get(BackendState(state.state))
    done = ACTIONS[op.action].done if op.action in ACTIONS else S.RUNNING
    if op.action == Action.RESIZE:
        flavor = Flavor.objects.get(pk=op.params["flavor_id"])
        finished = state.state == B.STOPPED and state.flavor == flavor.code
    else:
        finished = target == done
    if finished:
        _succeed(op, state)
        return DONE
    Operation.objects.filter(pk=op.pk).update(next_check_at=_next_check())
    return Step(settings.COMPUTE_POLL_SECONDS)


def _failure_advice(op: Operation, fault: str) -> str:
    what = fault.rstrip(".") if fault else "The cloud reported an error"
    if op.action == Action.CREATE:
        return f"{what}. Try launching it again; if it keeps failing, pick another image or zone."
    return f"{what}."


def _finish(op: Operation, state: str, *, message: str = "", detail: str = "") -> bool:
    """Close the operation once: only the first of two racing deliveries gets True."""
    return bool(
        Operation.objects.filter(pk=op.pk, state__in=[OperationState.PENDING, OperationState.RUNNING]).update(
            state=state, finished_at=timezone.now(), error_message=message[:500], error_detail=detail
        )
    )


def _succeed(op: Operation, state) -> None:
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=op.instance_id)
        if not _finish(op, OperationState.SUCCEEDED):
            return
        rule_done = ACTIONS[op.action].done if op.action in ACTIONS else S.RUNNING
        if not instance.can_become(rule_done):
            # Something else happened meanwhile (e.g. terminate asked while it was being created):
            # the newer request decides the status.
            notify.after_operation(op, instance)
            return
        fields = ["status", "updated_at"]
        instance.status = rule_done
        if state is not None and state.addresses:
            instance.addresses = list(state.addresses)
            fields.append("addresses")
        if rule_done == S.RUNNING and not instance.running_since:
            instance.running_since = timezone.now()
            fields.append("running_since")
        if rule_done == S.STOPPED:
            instance.running_since = None
            fields.append("running_since")
        if op.action == Action.RESIZE:
            instance.flavor_id = op.params["flavor_id"]
            fields.append("flavor")
        if op.action == Action.TERMINATE:
            instance.terminated_at = timezone.now()
            instance.addresses = []
            fields += ["terminated_at", "addresses"]
            # Volumes outlive their server: they are detached and kept.
            Volume.objects.filter(attached_to=instance).update(
                attached_to=None, status=VolumeStatus.AVAILABLE
            )
        if op.action == Action.CREATE:
            instance.fault_message = ""
            fields.append("fault_message")
        instance.save(update_fields=fields)
        sync_instance(instance)
        notify.after_operation(op, instance)


def _succeed_creates(finished: list[tuple[Operation, object]]) -> None:
    """`_succeed` for several new servers: one transaction, a fixed number of statements.

    The instances come from the claim with their zone, size and image (none of which changes
    while a server is created); what can change meanwhile is read again under the row lock."""
    with transaction.atomic():
        # The rows locked, and what may have changed since the claim read them (a terminate).
        current = {
            pk: fields
            for pk, *fields in Instance.objects.select_for_update()
            .filter(pk__in=[op.instance_id for op, _ in finished])
            .order_by("pk")
            .values_list("pk", "status", "running_since", "batch_id")
        }
        now = timezone.now()  # after the locks: what committed before us came first
        projects = Project.objects.in_bulk({op.instance.project_id for op, _ in finished})
        instances = {}
        for op, _ in finished:
            instance = op.instance
            instance.status, instance.running_since, instance.batch_id = current[instance.pk]
            instance.project = projects[instance.project_id]
            instances[instance.pk] = instance
        # Only operations still open are finished here (a racing delivery may have closed one).
        open_ = set(
            Operation.objects.select_for_update()
            .filter(pk__in=[op.pk for op, _ in finished], state__in=ACTIVE)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        Operation.objects.filter(pk__in=open_).update(
            state=OperationState.SUCCEEDED, finished_at=now, error_message="", error_detail=""
        )
        changed, batches = [], set()
        for op, state in finished:
            if op.pk not in open_:
                continue
            instance = instances[op.instance_id]
            if instance.batch_id:
                batches.add(instance.batch_id)
            if not instance.can_become(S.RUNNING):
                continue  # e.g. terminate asked while it was being created: that request decides
            instance.status, instance.updated_at, instance.fault_message = S.RUNNING, now, ""
            instance.running_since = instance.running_since or now
            if state.addresses:
                instance.addresses = list(state.addresses)
            changed.append(instance)
        if changed:
            # What they share in one statement, each one's addresses in another.
            Instance.objects.filter(pk__in=[i.pk for i in changed]).update(
                status=S.RUNNING,
                updated_at=now,
                fault_message="",
                running_since=Coalesce("running_since", Value(now)),
            )
            addressed = [i for i in changed if i.addresses]
            if addressed:
                Instance.objects.filter(pk__in=[i.pk for i in addressed]).update(
                    addresses=Case(
                        *(When(pk=i.pk, then=Value(i.addresses, JSONField())) for i in addressed),
                        output_field=JSONField(),
                    )
                )
        sync_instances(changed, at=now)
        notify.after_creations(batches)


def _fail(op: Operation, message: str, detail: str) -> None:
    # After a failed start/stop/reboot/resize the server usually still exists: show what the cloud
    # says it is doing. A failed launch or terminate is an error for a person to look at.
    current = None
    if op.action not in (Action.CREATE, Action.TERMINATE):
        current = _status_in_cloud(op.instance)
    backend_id = ""
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=op.instance_id)
        if not _finish(op, OperationState.FAILED, message=message, detail=detail):
            return
        log.warning(
            "operation failed", extra={"operation": str(op.pk), "action": op.action, "detail": detail}
        )
        instance.status = current if current in (S.RUNNING, S.STOPPED) else S.ERROR
        instance.fault_message = message[:500] if instance.status == S.ERROR else ""
        instance.save(update_fields=["status", "fault_message", "updated_at"])
        sync_instance(instance)
        if op.action == Action.CREATE:
            backend_id = instance.backend_id
        notify.after_operation(op, instance)
    if backend_id:
        _clean_up_failed_server(instance, backend_id)


def _status_in_cloud(instance: Instance) -> str | None:
    if not instance.backend_id:
        return None
    try:
        return STATUS_FOR.get(get_backend(instance.zone.backend).get_server(instance.backend_id).state)
    except BackendError:
        return None


def _clean_up_failed_server(instance: Instance, backend_id: str) -> None:
    """Best effort: a server that failed to boot should not hold capacity. The reconciler reports
    anything this leaves behind."""
    try:
        get_backend(instance.zone.backend).delete_server(backend_id)
        # Gone from the cloud: it no longer holds quota (an error row with a server still does).
        Instance.objects.filter(pk=instance.pk, backend_id=backend_id).update(backend_id="")
    except BackendError:
        log.warning("could not delete failed server", extra={"backend_id": backend_id}, exc_info=True)
