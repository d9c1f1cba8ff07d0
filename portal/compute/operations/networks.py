"""The kinds of operation that change private networks: create, delete, attach (a server joins),
detach (it leaves).

A network's status shows the request under way (`creating`, `deleting`, set by the service), a
port's likewise (`attaching`, `detaching`); what the cloud confirmed — the network exists, the
server's address inside it — is written only here, in `succeed`. Creation is idempotent by the
network's UUID in the cloud (`find_network`), so a submit repeated after a worker died between the
cloud call and saving its answer adopts the first network. Networks are free: nothing is metered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from portal.compute.backends import (
    BackendError,
    ComputeBackend,
    NetworkCloudState,
    NetworkSpec,
    NetworkState,
    NotFound,
    get_backend,
)
from portal.compute.models import (
    Action,
    Network,
    NetworkPort,
    NetworkStatus,
    Operation,
    OperationState,
    PortStatus,
)
from portal.compute.operations.kinds import Answers, Kind, Progress, each

log = logging.getLogger(__name__)
NS, PS = NetworkStatus, PortStatus
GONE_MESSAGE = "The network no longer exists in the cloud."


def network_spec(network: Network) -> NetworkSpec:
    return NetworkSpec(
        idempotency_key=str(network.pk), name=network.name, zone=network.zone.code, cidr=network.cidr
    )


def _network_id(backend: ComputeBackend, op: Operation) -> str:
    """The network's id in the cloud, found by its UUID when a dead worker never saved it."""
    network = op.network
    if not network.backend_id:
        found = backend.find_network(network.zone.code, str(network.pk))
        if found is None:
            raise NotFound("The network was never created in the cloud.", "no backend id")
        Network.objects.filter(pk=network.pk, backend_id="").update(backend_id=found.backend_id)
        network.backend_id = found.backend_id
    return network.backend_id


# --- submit -----------------------------------------------------------------------------------


def _create(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    return each(
        ops,
        lambda op: (
            backend.find_network(op.network.zone.code, str(op.network_id))
            or backend.create_network(network_spec(op.network))
        ),
    )


def _record_network_ids(accepted: list[tuple[Operation, NetworkState]]) -> None:
    new = []
    for op, state in accepted:
        if not op.network.backend_id:
            op.network.backend_id = state.backend_id
            new.append(op.network)
    Network.objects.bulk_update(new, ["backend_id"])


def _attach(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    return each(ops, lambda op: backend.attach_network(_network_id(backend, op), op.params["server_id"]))


def _detach(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    def call(op: Operation) -> None:
        try:
            backend.detach_network(_network_id(backend, op), op.params["server_id"])
        except NotFound:
            return None  # the network (and so the port) is gone: detached

    return each(ops, call)


def _delete(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    def call(op: Operation) -> None:
        try:
            backend.delete_network(_network_id(backend, op))
        except NotFound:
            return None  # never reached the cloud, or already gone

    return each(ops, call)


# --- look and progress ------------------------------------------------------------------------


def _look(backend: ComputeBackend, ops: list[Operation]) -> Answers:
    return each(
        ops,
        lambda op: (
            backend.get_network(op.network.backend_id)
            if op.network.backend_id
            else NotFound("The network was never created.", "no backend id")
        ),
    )


def _checked(done: Callable[[Operation, NetworkState], bool]):
    def progress(op: Operation, state: NetworkState) -> tuple[Progress, str]:
        if state.state == NetworkCloudState.ERROR:
            return Progress.FAILED, state.fault or "The cloud reports an error on the network"
        return (Progress.DONE if done(op, state) else Progress.WAITING), ""

    return progress


_available = _checked(lambda op, s: s.state == NetworkCloudState.AVAILABLE)
_attached = _checked(lambda op, s: op.params["server_id"] in s.ports)
_detached = _checked(lambda op, s: op.params["server_id"] not in s.ports)
_deleted = _checked(lambda op, s: False)  # a deletion ends when the cloud no longer finds it


# --- succeed ----------------------------------------------------------------------------------


def _port(op: Operation) -> NetworkPort | None:
    return (
        NetworkPort.objects.select_for_update()
        .filter(network_id=op.network_id, instance_id=op.params["instance_id"])
        .exclude(status=PS.DETACHED)
        .first()
    )


def _succeeded(apply: Callable[[Operation, Network, NetworkState | None, object], None]):
    def succeed(finished: list[tuple[Operation, NetworkState | None]]) -> None:
        with transaction.atomic():
            networks = {
                network.pk: network
                for network in Network.objects.select_for_update()
                .filter(pk__in=[op.network_id for op, _ in finished])
                .order_by("pk")
            }
            now = timezone.now()
            closed = Operation.objects.close_open([op.pk for op, _ in finished], OperationState.SUCCEEDED)
            for op, state in finished:
                if op.pk in closed:
                    apply(op, networks[op.network_id], state, now)

    return succeed


def _became_available(op: Operation, network: Network, state: NetworkState, now) -> None:
    network.status, network.backend_id, network.fault_message = NS.AVAILABLE, state.backend_id, ""
    network.save(update_fields=["status", "backend_id", "fault_message", "updated_at"])


def _became_attached(op: Operation, network: Network, state: NetworkState, now) -> None:
    if (port := _port(op)) is not None:
        port.status, port.address, port.fault_message = PS.ATTACHED, state.ports[op.params["server_id"]], ""
        port.save(update_fields=["status", "address", "fault_message", "updated_at"])


def _became_detached(op: Operation, network: Network, state: NetworkState | None, now) -> None:
    if (port := _port(op)) is not None:
        port.status = PS.DETACHED
        port.save(update_fields=["status", "updated_at"])


def _became_deleted(op: Operation, network: Network, state: NetworkState | None, now) -> None:
    network.status, network.deleted_at = NS.DELETED, now
    network.save(update_fields=["status", "deleted_at", "updated_at"])
    network.ports.exclude(status=PS.DETACHED).update(status=PS.DETACHED, updated_at=now)


# --- fail -------------------------------------------------------------------------------------


def _in_cloud(op: Operation) -> NetworkState | BackendError | None:
    network = op.network
    try:
        backend = get_backend(network.zone.backend)
        if not network.backend_id:
            return backend.find_network(network.zone.code, str(network.pk))
        return backend.get_network(network.backend_id)
    except NotFound:
        return None
    except BackendError as error:
        return error


def _network_failed(op: Operation, message: str, detail: str) -> None:
    """Close a failed operation and show what the cloud says. A failed creation leaves the network
    in error (deleted in the cloud, best effort); a refused attach leaves the port failed with the
    reason on the server's page; a refused detach or delete leaves things as the cloud has them."""
    seen = _in_cloud(op)
    with transaction.atomic():
        network = Network.objects.select_for_update().select_related("zone").get(pk=op.network_id)
        if not op.close(OperationState.FAILED, message=message, detail=detail):
            return
        log.warning(
            "operation failed", extra={"operation": str(op.pk), "action": op.action, "detail": detail}
        )
        now = timezone.now()
        if op.action == Action.NETWORK_CREATE or seen is None:
            network.status = NS.ERROR
            network.fault_message = (
                GONE_MESSAGE if seen is None and op.action != Action.NETWORK_CREATE else message
            )[:500]
            if seen is None:
                network.backend_id = ""
                network.ports.exclude(status=PS.DETACHED).update(status=PS.DETACHED, updated_at=now)
            network.save(update_fields=["status", "fault_message", "backend_id", "updated_at"])
        elif op.action == Action.NETWORK_DELETE:
            network.status, network.fault_message = NS.AVAILABLE, message[:500]
            network.save(update_fields=["status", "fault_message", "updated_at"])
        elif (port := _port(op)) is not None:
            on = isinstance(seen, NetworkState) and op.params["server_id"] in seen.ports
            if op.action == Action.NETWORK_ATTACH and not on:
                port.status, port.fault_message = PS.ERROR, message[:500]
            elif on:
                port.status, port.address = PS.ATTACHED, seen.ports[op.params["server_id"]]
                port.fault_message = "" if op.action == Action.NETWORK_ATTACH else message[:500]
            else:
                port.status = PS.DETACHED
            port.save(update_fields=["status", "address", "fault_message", "updated_at"])
    if op.action == Action.NETWORK_CREATE and isinstance(seen, NetworkState):
        try:
            get_backend(network.zone.backend).delete_network(seen.backend_id)
        except BackendError:
            log.warning(
                "could not delete failed network", extra={"backend_id": seen.backend_id}, exc_info=True
            )
            Network.objects.filter(pk=network.pk).update(backend_id=seen.backend_id)


def _network_kind(submit, progress, succeed, **extra) -> Kind:
    return Kind(
        submit=submit,
        look=_look,
        progress=progress,
        succeed=_succeeded(succeed),
        fail=_network_failed,
        gone_message=GONE_MESSAGE,
        **extra,
    )


NETWORK_OPERATIONS: dict[str, Kind] = {
    Action.NETWORK_CREATE: _network_kind(
        _create, _available, _became_available, submitted=_record_network_ids
    ),
    Action.NETWORK_ATTACH: _network_kind(_attach, _attached, _became_attached),
    Action.NETWORK_DETACH: _network_kind(_detach, _detached, _became_detached),
    Action.NETWORK_DELETE: _network_kind(_delete, _deleted, _became_deleted, gone_is_done=True),
}
