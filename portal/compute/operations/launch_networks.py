"""Private networks chosen in the launch wizard: the server joins each once it first runs.

`join_ready` is asked by the runner after every step that finished a server's creation, and by the
reconciler's sweep (a worker that died between the two). Each port is claimed by a conditional
UPDATE (waiting → attaching), so of two callers only one makes the attach operation; the attach is
the ordinary NETWORK_ATTACH kind, audited in the name of whoever launched the server."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.compute.models import Action, InstanceStatus, NetworkPort, NetworkStatus, Operation, PortStatus
from portal.compute.models.operations import operation_deadline

READY_SERVER = (InstanceStatus.RUNNING, InstanceStatus.STOPPED)


def join_ready(*, instance_ids: Iterable = (), sweep: bool = False) -> list[Operation]:
    """Attach operations for the waiting ports whose server is up (of these servers, or all with
    `sweep`). Returns the operations made, committed."""
    instance_ids = list(instance_ids)
    if not (instance_ids or sweep):
        return []
    ready = NetworkPort.objects.filter(
        status=PortStatus.WAITING,
        instance__status__in=READY_SERVER,
        network__status=NetworkStatus.AVAILABLE,
        network__zone=F("instance__zone"),
    )
    if not sweep:
        ready = ready.filter(instance__in=instance_ids)
    made = []
    with transaction.atomic():
        for port in ready.select_related(
            "instance__created_by", "network__project__organization", "network__zone"
        ):
            claimed = NetworkPort.objects.filter(pk=port.pk, status=PortStatus.WAITING).update(
                status=PortStatus.ATTACHING, updated_at=timezone.now()
            )
            if not claimed:
                continue  # another caller got there first
            server, network = port.instance, port.network
            made.append(
                Operation.objects.create(
                    network=network,
                    action=Action.NETWORK_ATTACH,
                    params={"instance_id": str(server.pk), "server_id": server.backend_id, "launch": True},
                    requested_by=server.created_by,
                    deadline=operation_deadline(),
                    step_token=uuid.uuid4().hex,
                )
            )
            audit_record(
                action=AuditAction.NETWORK_ATTACHED,
                organization=network.project.organization,
                project=network.project,
                target=network,
                changes={"server": [None, server.name], "chosen": [None, "at launch"]},
                actor=server.created_by,
            )
    return made


def leave_networks(instance_ids: Iterable, *, waiting_only: bool = False) -> None:
    """A terminated server is on no network any more (the cloud dropped its ports with it); one
    that failed to launch joins none."""
    ports = NetworkPort.objects.filter(instance__in=list(instance_ids)).exclude(status=PortStatus.DETACHED)
    if waiting_only:
        ports = ports.filter(status=PortStatus.WAITING)
    ports.update(status=PortStatus.DETACHED, updated_at=timezone.now())
