"""Restoring a server's disk from a snapshot or backup of it, or from one of the project's own
images (the cloud's "rebuild"): the root disk is replaced by the image's, everything written since
is lost, and the server restarts (a stopped one stays stopped).

One operation (`Action.REBUILD`, compute/operations/servers.py) through the pipeline; the request is
confirmed by typing the server's name. Every reason to refuse is given at once, and a refused
request changes nothing. What may be chosen (`restore_choices`) and what is refused
(`restore_problems`) are one set of rules, read by the page, the form and the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.http import HttpRequest

from portal.audit.models import AuditAction
from portal.catalog.models import Image
from portal.compute.backends import Capability
from portal.compute.models import (
    REBUILD_FROM,
    Action,
    Instance,
    InstanceStatus,
    Operation,
    OperationState,
    Snapshot,
    SnapshotStatus,
)
from portal.compute.models.snapshots import BOOTABLE_KINDS
from portal.compute.services.common import ComputeRefused, Problem, audit, enqueue_on_commit
from portal.compute.services.consoles import console_sessions_end
from portal.compute.snapshot_rules import SERVER_BUSY, capability_refusal
from portal.metering.segments import sync_instance
from portal.tenancy.access import Access, Perm

S = InstanceStatus
SS = SnapshotStatus


@dataclass(frozen=True)
class RestoreChoice:
    """One thing the server's disk may be restored from, as the page offers it."""

    value: str  # the form's value: "snapshot:<uuid>" or "image:<id>"
    name: str
    kind: str  # "Server snapshot", "Backup", "Image"
    created_at: object
    size_gib: int
    refusal: str = ""  # why it can't be chosen now ("" when it can)


def restore_choices(instance: Instance, taken: list[Snapshot] | None = None) -> list[RestoreChoice]:
    """The server's own snapshots and backups in its zone (those still being taken too, with why
    they can't be chosen yet), then the project's images in that zone that fit its disk. `taken`:
    the server's existing snapshots, newest first, when the caller has them already."""
    choices = []
    if taken is None:
        taken = list(Snapshot.objects.existing().filter(source_instance=instance).order_by("-created_at"))
    snapshots = [
        s
        for s in taken
        if s.zone_id == instance.zone_id and s.kind in BOOTABLE_KINDS and s.status != SS.DELETING
    ]
    offered = set()
    for snapshot in snapshots:
        offered.add(snapshot.image_id)
        refusal = _snapshot_state_refusal(snapshot)
        if not refusal and snapshot.min_disk_gib > instance.root_disk_gib:
            refusal = _too_large(snapshot.name, snapshot.min_disk_gib, instance)
        choices.append(
            RestoreChoice(
                value=f"snapshot:{snapshot.pk}",
                name=snapshot.name,
                kind=snapshot.get_kind_display(),
                created_at=snapshot.created_at,
                size_gib=snapshot.size_gib,
                refusal=refusal,
            )
        )
    images = Image.objects.filter(
        project_id=instance.project_id,
        is_active=True,
        zones=instance.zone,
        min_disk_gib__lte=instance.root_disk_gib,
    ).order_by("name")
    for image in images:
        if image.pk in offered or not image.backend_ref(instance.zone.code):
            continue
        choices.append(
            RestoreChoice(
                value=f"image:{image.pk}",
                name=image.name,
                kind="Image",
                created_at=None,
                size_gib=image.min_disk_gib,
            )
        )
    return choices


def _too_large(name: str, min_disk_gib: int, instance: Instance) -> str:
    return (
        f"“{name}” needs a disk of at least {min_disk_gib} GiB; "
        f"{instance.name}'s disk is {instance.root_disk_gib} GiB."
    )


def _snapshot_state_refusal(snapshot: Snapshot) -> str:
    if snapshot.status == SS.CREATING:
        return f"“{snapshot.name}” is still being taken: wait until it is available."
    if snapshot.status == SS.AVAILABLE and not snapshot.image_ref:
        return f"“{snapshot.name}” has no image in the cloud to restore a disk from."
    if snapshot.status != SS.AVAILABLE:
        return (
            f"“{snapshot.name}” is {snapshot.get_status_display().lower()}: a disk can't be restored from it."
        )
    return ""


def server_restore_problems(
    instance: Instance, *, unavailable: str | None = None, taking: bool | None = None
) -> list[Problem]:
    """What keeps the server's disk from being restored now, whatever it is restored from
    (`unavailable`: the zone's refusal, `taking`: a snapshot of it is being taken, when known)."""
    problems = []
    if unavailable is None:
        unavailable = capability_refusal(instance.zone, Capability.SERVER_REBUILD)
    if unavailable:
        problems.append(Problem(None, unavailable, 409))
    if instance.status == S.REBUILDING:
        problems.append(
            Problem(None, f"{instance.name} is already having its disk restored: wait until it is done.", 409)
        )
    elif instance.status in SERVER_BUSY:
        problems.append(
            Problem(
                None,
                f"{instance.name} is {SERVER_BUSY[instance.status]}: its disk can't be restored now.",
                409,
            )
        )
    elif instance.status not in REBUILD_FROM:
        problems.append(
            Problem(None, f"{instance.name} is in error ({instance.fault_message or 'see its page'}).", 409)
        )
    elif (
        taking
        if taking is not None
        else Snapshot.objects.filter(source_instance=instance, status=SS.CREATING).exists()
    ):
        problems.append(
            Problem(None, f"A snapshot of {instance.name} is being taken: wait until it is done.", 409)
        )
    return problems


def restore_problems(instance: Instance, *, snapshot: Snapshot | None, image: Image | None) -> list[Problem]:
    """Why the disk can't be restored from this snapshot or image (every reason), [] when it can.
    Another project's snapshot or image is not looked at here: the caller answers 404 for it."""
    problems = []
    zone = instance.zone
    where = f"{instance.name} is in {zone.code} ({zone.region.name})"
    if snapshot is not None:
        if snapshot.kind not in BOOTABLE_KINDS:
            problems.append(
                Problem(
                    "source",
                    f"“{snapshot.name}” is a volume snapshot: a server's disk is restored from a "
                    "server snapshot or a backup.",
                )
            )
        elif snapshot.zone_id != zone.pk:
            problems.append(
                Problem(
                    "source",
                    f"“{snapshot.name}” is kept in {snapshot.zone.code} ({snapshot.zone.region.name}); {where}. "
                    "A disk is restored only from a snapshot in its own zone.",
                )
            )
        elif refusal := _snapshot_state_refusal(snapshot):
            problems.append(Problem("source", refusal, 409))
        elif snapshot.min_disk_gib > instance.root_disk_gib:
            problems.append(Problem("source", _too_large(snapshot.name, snapshot.min_disk_gib, instance)))
    elif image is not None:
        if not image.is_active:
            problems.append(Problem("source", f"The image “{image.name}” is no longer offered."))
        elif not image.backend_ref(zone.code) or not image.zones.filter(pk=zone.pk).exists():
            problems.append(
                Problem(
                    "source",
                    f"The image “{image.name}” is not kept in {zone.code}; {where}. "
                    "A disk is restored only from an image in its own zone.",
                )
            )
        elif image.min_disk_gib > instance.root_disk_gib:
            problems.append(Problem("source", _too_large(image.name, image.min_disk_gib, instance)))
    return problems + server_restore_problems(instance)


def instance_restore_disk(
    *,
    access: Access,
    instance: Instance,
    snapshot: Snapshot | None = None,
    image: Image | None = None,
    confirm_name: str = "",
    request: HttpRequest | None = None,
) -> Operation:
    """Replace the server's disk by a snapshot's, a backup's or a project image's. Asking again
    for the same restore while it is under way returns that operation and changes nothing."""
    access.require(Perm.RESOURCE_OPERATE)
    if (snapshot is None) == (image is None):
        raise ComputeRefused("Choose the snapshot, backup or image to restore the disk from.", "source")
    if instance.project_id != access.project.pk:
        raise ComputeRefused("No such server in this project.", status=404)
    if snapshot is not None and snapshot.project_id != instance.project_id:
        raise ComputeRefused("No such snapshot or backup in this project.", "source", status=404)
    if image is not None and image.project_id != instance.project_id:
        if image.project_id is None:
            raise ComputeRefused(
                f"“{image.name}” is a catalog image: a disk is restored from this server's snapshots and "
                "backups or the project's own images.",
                "source",
            )
        raise ComputeRefused("No such image in this project.", "source", status=404)
    with transaction.atomic():
        locked = (
            Instance.objects.select_for_update(of=("self",))
            .select_related("project", "zone__region", "flavor", "image")
            .get(pk=instance.pk)
        )
        source_name = snapshot.name if snapshot is not None else image.name
        under_way = locked.operations.filter(
            action=Action.REBUILD, state__in=[OperationState.PENDING, OperationState.RUNNING]
        ).first()
        if under_way is not None and under_way.params.get("source_name") == source_name:
            return under_way  # the same request again: nothing new
        problems = []
        if (confirm_name or "").strip() != locked.name:
            problems.append(Problem("confirm_name", f"Type the server's name “{locked.name}” to confirm."))
        problems += restore_problems(locked, snapshot=snapshot, image=image)
        if problems:
            raise ComputeRefused.of(problems)
        target = snapshot.image if snapshot is not None else image
        image_ref = snapshot.image_ref if snapshot is not None else image.backend_ref(locked.zone.code)
        then = locked.status
        operation = Operation.objects.create(
            instance=locked,
            action=Action.REBUILD,
            requested_by=access.membership.user,
            params={
                "image_ref": image_ref,
                "image_id": target.pk if target else None,
                "snapshot_id": str(snapshot.pk) if snapshot is not None else None,
                "source_name": source_name,
                "then": then,
            },
        )
        locked.status = S.REBUILDING
        locked.save(update_fields=["status", "updated_at"])
        sync_instance(locked)
        audit(
            access,
            AuditAction.INSTANCE_ACTION,
            locked,
            {"action": [None, Action.REBUILD.label], "from": [None, source_name]},
            request,
        )
        enqueue_on_commit([operation])
        if then == S.RUNNING:
            ended = f"{locked.name} is restarting with its restored disk: the console was closed."
            transaction.on_commit(lambda: console_sessions_end(locked, ended))
        return operation
