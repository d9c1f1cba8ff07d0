"""The kinds of operation that change servers: launch, start, stop, reboot, resize, terminate,
restore the disk from a snapshot (rebuild), and enter and leave rescue mode."""

from __future__ import annotations

import logging
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from portal.catalog.models import Flavor
from portal.compute import notify
from portal.compute.backends import (
    REBUILD_METADATA_KEY,
    BackendError,
    BackendState,
    ComputeBackend,
    NotFound,
    ServerSpec,
    ServerState,
    Transient,
    get_backend,
)
from portal.compute.models import (
    ACTIONS,
    Action,
    FirewallRule,
    Instance,
    InstanceStatus,
    Operation,
    OperationState,
    Volume,
    VolumeStatus,
)
from portal.compute.operations.kinds import Answers, Kind, Progress, each
from portal.compute.operations.launch_networks import leave_networks
from portal.compute.operations.launch_volumes import release_pending
from portal.ipam.models import AddressAllocation
from portal.ipam.services import address_release
from portal.metering.segments import sync_instance, sync_instances

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
    B.REBUILDING: S.REBUILDING,
    B.RESCUING: S.RESCUING,
    B.RESCUE: S.RESCUE,
    B.UNRESCUING: S.UNRESCUING,
    B.DELETING: S.TERMINATING,
    B.ERROR: S.ERROR,
}


# --- Servers ----------------------------------------------------------------------------------


def server_specs(instances: list[Instance]) -> list[ServerSpec]:
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
    # The addresses the operator's pools assigned at launch (services/launch_addresses.py).
    addresses = defaultdict(list)
    for instance_id, address in (
        AddressAllocation.objects.live()
        .filter(instance__in=ids)
        .order_by("family")
        .values_list("instance_id", "address")
    ):
        addresses[instance_id].append(address)
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
            # A project's own image (a snapshot, an upload) is the cloud's image in this zone.
            image_backend_id=instance.image.backend_ref(instance.zone.code),
            addresses=tuple(addresses[instance.pk]),
        )
        for instance in instances
    ]


def _server_id(backend: ComputeBackend, op: Operation) -> str:
    """The server's id in the cloud. A row without one (a worker died after the cloud made the
    server and before the id was saved) finds it by the instance's UUID and keeps it."""
    instance = op.instance
    if not instance.backend_id:
        found = backend.find_server(instance.zone.code, str(instance.pk))
        if found is None:
            raise NotFound("The server was never created in the cloud.", "no backend id")
        Instance.objects.filter(pk=instance.pk, backend_id="").update(backend_id=found.backend_id)
        instance.backend_id = found.backend_id
    return instance.backend_id


def _create(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    # Adopts a server already made with the instance's UUID: a retried creation makes no second.
    return backend.create_servers(server_specs([op.instance for op in ops]))


def _show_provisioning(ops: list[Operation]) -> None:
    Instance.objects.filter(pk__in=[op.instance_id for op in ops], status=S.PENDING).update(
        status=S.PROVISIONING, updated_at=timezone.now()
    )


def _record_server_ids(accepted: list[tuple[Operation, ServerState]]) -> None:
    new = []
    for op, state in accepted:
        if not op.instance.backend_id:
            op.instance.backend_id = state.backend_id
            new.append(op.instance)
    Instance.objects.bulk_update(new, ["backend_id"])


def _being_terminated(op: Operation) -> bool:
    return op.instance.status in (S.TERMINATING, S.TERMINATED)


def _cancel_create(backend: ComputeBackend, op: Operation) -> None:
    """Terminated while being created: make sure no server is left behind, then close quietly.
    A transient error retries this; any other leaves what remains to the reconciler's orphan list."""
    try:
        found = backend.find_server(op.instance.zone.code, str(op.instance_id))
        if found is not None:
            backend.delete_server(found.backend_id)
    except Transient:
        raise
    except BackendError:
        pass
    with transaction.atomic():
        if op.close(
            OperationState.FAILED, message="Cancelled: the server was terminated while it was being created."
        ):
            notify.after_operations([(op, op.instance)])


def _act(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    def call(op: Operation) -> None:
        backend_id = _server_id(backend, op)
        match op.action:
            case Action.START:
                backend.start_server(backend_id)
            case Action.STOP:
                backend.stop_server(backend_id)
            case Action.REBOOT | Action.HARD_REBOOT:
                backend.reboot_server(backend_id, hard=op.action == Action.HARD_REBOOT)
            case Action.RESIZE:
                flavor = Flavor.objects.get(pk=op.params["flavor_id"])
                backend.resize_server(
                    backend_id, flavor=flavor.code, vcpus=flavor.vcpus, ram_gib=flavor.ram_gib
                )
            case Action.RESCUE:
                backend.rescue_server(backend_id)
            case Action.UNRESCUE:
                backend.unrescue_server(backend_id)

    return each(ops, call)


def _delete(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    def call(op: Operation) -> None:
        try:
            backend.delete_server(_server_id(backend, op))
        except NotFound:
            return None  # never reached the cloud, or already gone: nothing to delete

    return each(ops, call)


def _look_at_servers(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    """The servers' states in one call; one never created (no id) is not found."""
    known = [op for op in ops if op.instance.backend_id]
    states = dict(
        zip(
            (op.pk for op in known),
            backend.get_servers([op.instance.backend_id for op in known]) if known else [],
            strict=True,
        )
    )
    return [states.get(op.pk) or NotFound("The server was never created.", "no backend id") for op in ops]


def _fault(state: ServerState) -> tuple[Progress, str]:
    return Progress.FAILED, state.fault or "backend reports error"


def _running(op: Operation, state: ServerState) -> tuple[Progress, str]:
    if state.state == B.ERROR:
        return _fault(state)
    return (Progress.DONE if state.state == B.RUNNING else Progress.WAITING), ""


def _as_asked(op: Operation, state: ServerState) -> tuple[Progress, str]:
    """Start, stop, reboot: done once the cloud shows the state the action leaves."""
    if state.state == B.ERROR:
        return _fault(state)
    return (Progress.DONE if STATUS_FOR.get(state.state) == ACTIONS[op.action].done else Progress.WAITING), ""


def _resized(op: Operation, state: ServerState) -> tuple[Progress, str]:
    if state.state == B.ERROR:
        return _fault(state)
    flavor = Flavor.objects.only("code").get(pk=op.params["flavor_id"])
    return (
        Progress.DONE if state.state == B.STOPPED and state.flavor == flavor.code else Progress.WAITING
    ), ""


def _rebuilt(op: Operation, state: ServerState) -> tuple[Progress, str]:
    """Done once the cloud carries this rebuild's key and the server is back where it was."""
    if state.state == B.ERROR:
        return _fault(state)
    ours = state.metadata.get(REBUILD_METADATA_KEY) == str(op.pk)
    return (
        Progress.DONE if ours and STATUS_FOR.get(state.state) == op.params.get("then") else Progress.WAITING
    ), ""


def _rebuild(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    def call(op: Operation) -> None:
        backend.rebuild_server(
            _server_id(backend, op), image_ref=op.params["image_ref"], rebuild_key=str(op.pk)
        )

    return each(ops, call)


def _still_there(op: Operation, state: ServerState) -> tuple[Progress, str]:
    return Progress.WAITING, ""  # a deletion ends when the cloud no longer finds the server


def _servers_succeeded(finished: list[tuple[Operation, ServerState | None]]) -> None:
    """Close the operations and bring their servers in line, in a fixed number of statements
    however many there are (a launch of fifty finishes together)."""
    with transaction.atomic():
        instances = (
            Instance.objects.select_for_update(of=("self",))
            .select_related("project", "flavor", "image")
            .filter(pk__in=[op.instance_id for op, _ in finished])
            .order_by("pk")
        )
        instances = {instance.pk: instance for instance in instances}
        now = timezone.now()  # after the locks: what committed before us came first
        closed = Operation.objects.close_open([op.pk for op, _ in finished], OperationState.SUCCEEDED)
        changed, fields, done = [], set(), []
        for op, state in finished:
            if op.pk not in closed:
                continue
            op.state, op.finished_at = OperationState.SUCCEEDED, now
            instance = instances[op.instance_id]
            done.append((op, instance))
            written = instance.record_success(
                op.action,
                addresses=state.addresses if state is not None else (),
                flavor_id=op.params.get("flavor_id"),
                image_id=op.params.get("image_id"),
                then=op.params.get("then"),
                now=now,
            )
            if written:
                changed.append(instance)
                fields.update(written)
        if changed:
            Instance.objects.bulk_update(changed, sorted(fields))
        terminated = [i.pk for i in changed if i.status == S.TERMINATED]
        if terminated:
            # Volumes outlive their server: the cloud let go of them with it, and they are kept.
            attached = Volume.objects.filter(attached_to__in=terminated)
            attached.filter(
                status__in=[VolumeStatus.IN_USE, VolumeStatus.ATTACHING, VolumeStatus.DETACHING]
            ).update(status=VolumeStatus.AVAILABLE)
            attached.update(attached_to=None, device="", updated_at=now)
            release_pending(terminated)
            leave_networks(terminated)
            address_release(instance_ids=terminated, now=now)  # to rest in quarantine first
        sync_instances(changed, at=now)
        notify.after_operations(done)


def _status_in_cloud(instance: Instance) -> str | None:
    if not instance.backend_id:
        return None
    try:
        return STATUS_FOR.get(get_backend(instance.zone.backend).get_server(instance.backend_id).state)
    except BackendError:
        return None


def _server_failed(op: Operation, message: str, detail: str) -> None:
    """Close a failed operation. After a failed start, stop, reboot or resize the server usually
    still exists: it shows what the cloud says it is doing. A failed launch or terminate is an
    error for a person to look at, and a failed launch's server is deleted (best effort)."""
    status_in_cloud = None
    if op.action not in (Action.CREATE, Action.TERMINATE):
        status_in_cloud = _status_in_cloud(op.instance)
    with transaction.atomic():
        instance = (
            Instance.objects.select_for_update(of=("self",))
            .select_related("project", "zone", "flavor", "image")
            .get(pk=op.instance_id)
        )
        if not op.close(OperationState.FAILED, message=message, detail=detail):
            return
        log.warning(
            "operation failed", extra={"operation": str(op.pk), "action": op.action, "detail": detail}
        )
        if op.action == Action.CREATE and instance.status in (S.TERMINATING, S.TERMINATED):
            notify.after_operations([(op, instance)])  # the terminate decides the status
            return
        instance.record_failure(message, status_in_cloud)
        if op.action == Action.CREATE:
            release_pending([instance.pk])
            leave_networks([instance.pk], waiting_only=True)
            if not instance.backend_id:  # never made in the cloud: its addresses are nobody's
                address_release(instance_ids=[instance.pk])
        instance.save(update_fields=["status", "fault_message", "updated_at"])
        sync_instance(instance)
        notify.after_operations([(op, instance)])
    if op.action == Action.CREATE and instance.backend_id:
        _delete_failed_server(instance)


def _delete_failed_server(instance: Instance) -> None:
    """A server that failed to boot should not hold capacity. Best effort: the reconciler reports
    anything this leaves behind."""
    try:
        get_backend(instance.zone.backend).delete_server(instance.backend_id)
    except BackendError:
        log.warning(
            "could not delete failed server", extra={"backend_id": instance.backend_id}, exc_info=True
        )
        return
    # Gone from the cloud: it no longer holds quota (an error row with a server still does), nor
    # its addresses (while the server may still be there, they stay held: terminate returns them).
    Instance.objects.filter(pk=instance.pk, backend_id=instance.backend_id).update(backend_id="")
    address_release(instance_ids=[instance.pk])


def _server_kind(submit, progress, **extra) -> Kind:
    return Kind(
        submit=submit,
        look=_look_at_servers,
        progress=progress,
        succeed=_servers_succeeded,
        fail=_server_failed,
        **extra,
    )


SERVER_OPERATIONS: dict[str, Kind] = {
    Action.CREATE: _server_kind(
        _create,
        _running,
        started=_show_provisioning,
        submitted=_record_server_ids,
        cancelled=_being_terminated,
        cancel=_cancel_create,
    ),
    Action.START: _server_kind(_act, _as_asked),
    Action.STOP: _server_kind(_act, _as_asked),
    Action.REBOOT: _server_kind(_act, _as_asked),
    Action.HARD_REBOOT: _server_kind(_act, _as_asked),
    Action.RESIZE: _server_kind(_act, _resized),
    Action.TERMINATE: _server_kind(_delete, _still_there, gone_is_done=True),
    Action.REBUILD: _server_kind(_rebuild, _rebuilt),
    Action.RESCUE: _server_kind(_act, _as_asked),
    Action.UNRESCUE: _server_kind(_act, _as_asked),
}
