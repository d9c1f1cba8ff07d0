"""Volumes chosen with a launch are attached once both they and their server are ready: a new
volume when the cloud has made it, the server when it first runs, whichever comes last.

`attach_ready` is asked after every step that finished a server's or a volume's creation (by the
runner, which hands the new operations their first step) and by the reconciler's sweep (a worker
that died between the two). Each volume is claimed by a conditional UPDATE (`pending_server` set
and available → attaching), so of two callers only one makes the attach operation; the attach is
the ordinary VOLUME_ATTACH kind, audited in the name of whoever launched the server."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.compute.models import Action, InstanceStatus, Operation, Volume, VolumeStatus
from portal.compute.models.operations import operation_deadline

# A server takes its volumes when it is up; one stopped meanwhile takes them too (a cold attach).
READY_SERVER = (InstanceStatus.RUNNING, InstanceStatus.STOPPED)


def attach_ready(
    *, instance_ids: Iterable = (), volume_ids: Iterable = (), sweep: bool = False
) -> list[Operation]:
    """Attach operations for the launch volumes now ready, of these servers or volumes (or of all,
    with `sweep`). Returns the operations made, committed."""
    instance_ids, volume_ids = list(instance_ids), list(volume_ids)
    if not (instance_ids or volume_ids or sweep):
        return []
    ready = Volume.objects.existing().filter(
        status=VolumeStatus.AVAILABLE,
        pending_server__status__in=READY_SERVER,
        pending_server__zone=F("zone"),
    )
    if not sweep:
        ready = ready.filter(Q(pending_server__in=instance_ids) | Q(pk__in=volume_ids))
    made = []
    with transaction.atomic():
        for volume in ready.select_related("pending_server__created_by", "zone", "project__organization"):
            server = volume.pending_server
            claimed = Volume.objects.filter(
                pk=volume.pk, pending_server=server, status=VolumeStatus.AVAILABLE
            ).update(
                status=VolumeStatus.ATTACHING,
                attached_to=server,
                pending_server=None,
                updated_at=timezone.now(),
            )
            if not claimed:
                continue  # another caller got there first
            made.append(
                Operation.objects.create(
                    volume=volume,
                    action=Action.VOLUME_ATTACH,
                    params={"instance_id": str(server.pk), "server_id": server.backend_id, "launch": True},
                    requested_by=server.created_by,
                    deadline=operation_deadline(),
                    step_token=uuid.uuid4().hex,
                )
            )
            audit_record(
                action=AuditAction.VOLUME_ATTACHED,
                organization=volume.project.organization,
                project=volume.project,
                target=volume,
                changes={"server": [None, server.name], "chosen": [None, "at launch"]},
                actor=server.created_by,
            )
    return made


def release_pending(instance_ids: Iterable) -> None:
    """A server that failed to launch or was terminated takes no volumes: those waiting for it are
    the project's to use (new ones stay, as the customer asked for them)."""
    Volume.objects.filter(pending_server__in=list(instance_ids)).update(pending_server=None)
