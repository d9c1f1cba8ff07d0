"""One step of an operation, as the Celery task runs it: submit to the cloud, or look at how it is
going. Safe to run twice: every change of state is a conditional UPDATE, creation adopts a server
already made with the instance's UUID, and no transaction is open while the cloud is called."""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from portal.catalog.models import Flavor
from portal.compute import notify
from portal.compute.backends import (
    BackendError,
    BackendState,
    NotFound,
    Rejected,
    ServerSpec,
    Transient,
    get_backend,
)
from portal.compute.models import (
    Action,
    Instance,
    InstanceStatus,
    Operation,
    OperationState,
    Volume,
    VolumeStatus,
)
from portal.compute.models.instances import ACTIONS
from portal.metering.segments import sync_instance

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
    return ServerSpec(
        idempotency_key=str(instance.pk),
        name=instance.name,
        zone=instance.zone.code,
        flavor=instance.flavor.code,
        vcpus=instance.flavor.vcpus,
        ram_gib=instance.flavor.ram_gib,
        root_disk_gib=instance.root_disk_gib,
        image=instance.image.name,
        ssh_keys=tuple(instance.ssh_keys.values_list("public_key", flat=True)),
        user_data=instance.user_data,
        firewall_rules=tuple(
            instance.firewall.rules.values("protocol", "port_from", "port_to", "source")
            if instance.firewall
            else ()
        ),
    )


def claim(operation_id, token) -> str | None:
    """Take the operation's next step: only the message carrying the current token may.

    The token changes with every step, so a duplicate or late message (a redelivery, a message the
    reconciler already replaced) finds a stale token and does nothing: one chain of steps at most.
    The claim also pushes `next_check_at` forward; if this worker dies mid-step, the reconciler
    starts a new chain once that time has passed.
    """
    new = uuid.uuid4().hex
    claimed = Operation.objects.filter(
        pk=operation_id, step_token=token, state__in=[OperationState.PENDING, OperationState.RUNNING]
    ).update(
        step_token=new, next_check_at=timezone.now() + timedelta(seconds=settings.COMPUTE_STEP_LEASE_SECONDS)
    )
    return new if claimed else None


def advance(operation_id: str, token: str | None = None) -> Step:
    """One step. Without a token (tests, admin tools) the current one is used."""
    if token is None:
        token = Operation.objects.filter(pk=operation_id).values_list("step_token", flat=True).first()
    new_token = claim(operation_id, token)
    if new_token is None:
        return DONE  # finished, or another message holds the step
    step = _advance(operation_id)
    return Step(step.again_in, new_token) if not step.done else DONE


def _advance(operation_id: str) -> Step:
    op = (
        Operation.objects.select_related(
            "instance__zone", "instance__flavor", "instance__image", "instance__firewall"
        )
        .filter(pk=operation_id)
        .first()
    )
    if op is None or op.is_final:
        return DONE  # a second delivery of finished work: nothing to do
    instance = op.instance
    now = timezone.now()
    if now > op.deadline:
        _fail(op, "This took far too long, so we stopped waiting. Please try again.", "deadline passed")
        return DONE
    if op.action == Action.CREATE and instance.status in (S.TERMINATING, S.TERMINATED):
        return _cancel_create(op, instance)
    if op.state == OperationState.PENDING:
        Operation.objects.filter(pk=op.pk, state=OperationState.PENDING).update(state=OperationState.RUNNING)
        if op.action == Action.CREATE:
            Instance.objects.filter(pk=instance.pk, status=S.PENDING).update(
                status=S.PROVISIONING, updated_at=now
            )

    backend = get_backend(instance.zone.backend)
    try:
        if op.submitted_at is None:
            _submit(op, instance, backend)
            Operation.objects.filter(pk=op.pk, submitted_at=None).update(
                submitted_at=timezone.now(), next_check_at=_next_check()
            )
            return Step(settings.COMPUTE_POLL_SECONDS)
        return _check(op, instance, backend)
    except Transient as error:
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
    except Rejected as error:
        _fail(op, error.user_message, error.detail)
        return DONE
    except NotFound as error:
        if op.action == Action.TERMINATE:
            _succeed(op, None)
            return DONE
        _fail(op, "The server no longer exists in the cloud.", error.detail)
        return DONE


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
    if op.action == Action.CREATE:
        state = backend.find_server(instance.zone.code, str(instance.pk))
        if state is None:
            state = backend.create_server(_spec(instance))
        Instance.objects.filter(pk=instance.pk, backend_id="").update(backend_id=state.backend_id)
        instance.backend_id = instance.backend_id or state.backend_id
        # Terminated while the cloud was creating it: don't leave the new server behind.
        if Instance.objects.filter(pk=instance.pk, status__in=[S.TERMINATING, S.TERMINATED]).exists():
            backend.delete_server(state.backend_id)
        return
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
