"""Writes for a project's volumes: each takes `access`, checks the role, validates, changes rows
under the project lock (quota and "is it attached?" answers cannot race), records an audit event,
and raises ComputeRefused, QuotaExceeded or PlacementDenied.

Volumes are portal records only: creating, attaching, detaching and deleting one calls no
compute backend. The rows, quota, placement decisions and audit trail are real; the disks are not.
"""

from __future__ import annotations

import re

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from portal.audit.models import AuditAction
from portal.catalog.models import Zone
from portal.compute.models import (
    Instance,
    InstanceStatus,
    Volume,
    VolumeStatus,
)
from portal.compute.quota import check_quota
from portal.compute.services.common import ComputeRefused, Problem, audit, lock_project
from portal.metering.segments import sync_volume
from portal.residency.placement import PlacementDenied, placement_decision
from portal.residency.services import record_placement_denied
from portal.tenancy.access import Access, Perm

# Same rule as server names: volumes may become device labels on the backend one day.
VOLUME_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
VOLUME_NAME_RULE = (
    "Use lower-case letters, digits and hyphens (not at the start or end), at most 63 characters."
)
VOLUME_NAME_MAX_LENGTH = 63
VOLUME_MIN_GIB, VOLUME_MAX_GIB = 1, 16384
ATTACHABLE = frozenset({InstanceStatus.RUNNING, InstanceStatus.STOPPED})


def volume_create(
    *, access: Access, name: str, zone: Zone, size_gib: int, request: HttpRequest | None = None
) -> Volume:
    """A new, unattached volume in `zone`. Raises ComputeRefused, QuotaExceeded or PlacementDenied
    (audited). The policy is checked before the zone's status, so a forbidden zone is always audited."""
    access.require(Perm.RESOURCE_CREATE)
    name = (name or "").strip()
    problems = []  # all at once, not one per attempt
    if not VOLUME_NAME_RE.match(name) or len(name) > VOLUME_NAME_MAX_LENGTH:
        problems.append(Problem("name", VOLUME_NAME_RULE))
    if not VOLUME_MIN_GIB <= size_gib <= VOLUME_MAX_GIB:
        problems.append(Problem("size_gib", f"A volume is {VOLUME_MIN_GIB} to {VOLUME_MAX_GIB} GiB."))
    if not zone.region.is_active:
        problems.append(Problem("zone", "Choose one of the zones listed."))
    if problems:
        raise ComputeRefused.of(problems)
    with transaction.atomic():
        project = lock_project(access)
        decision = placement_decision(project, zone, lock=True)
        if decision.allowed:
            if not zone.accepts_launches:
                raise ComputeRefused(
                    zone.refusal,
                    "zone",
                    409,
                )
            if Volume.objects.existing().filter(project=project, name=name).exists():
                raise ComputeRefused(f"The project already has a volume named “{name}”.", "name", 409)
            check_quota(project, volume_gib=size_gib)
            volume = Volume.objects.create(
                project=project, name=name, zone=zone, size_gib=size_gib, created_by=access.membership.user
            )
            sync_volume(volume)
            audit(
                access,
                AuditAction.VOLUME_CREATED,
                volume,
                {"size": [None, f"{size_gib} GiB"], "zone": [None, zone.code]},
                request,
            )
            return volume
    record_placement_denied(
        access=access,
        zone=zone,
        attempted=f"create volume {name} ({size_gib} GiB) in {zone.code}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)


def _locked_volume(access: Access, volume: Volume) -> Volume:
    locked = (
        Volume.objects.existing().select_for_update().filter(project=access.project, pk=volume.pk).first()
    )
    if locked is None:
        raise ComputeRefused(f"Volume {volume.name} has been deleted.", status=409)
    return locked


def volume_attach(
    *, access: Access, volume: Volume, instance: Instance, request: HttpRequest | None = None
) -> Volume:
    """Attach to a running or stopped server in the same zone. Attaching it again to the same
    server changes nothing. The placement decision applies: a zone the policy no longer allows
    takes no new attachments."""
    access.require(Perm.RESOURCE_OPERATE)
    with transaction.atomic():
        project = lock_project(access)
        volume = _locked_volume(access, volume)
        instance = (
            Instance.objects.select_for_update()
            .filter(project=project, pk=instance.pk)
            .exclude(status=InstanceStatus.TERMINATED)
            .first()
        )
        if instance is None:
            raise ComputeRefused("Choose one of the project's servers.", "instance")
        if volume.status == VolumeStatus.IN_USE:
            if volume.attached_to_id == instance.pk:
                return volume
            attached = (
                Instance.objects.filter(pk=volume.attached_to_id).values_list("name", flat=True).first()
            )
            raise ComputeRefused(f"{volume.name} is attached to {attached}: detach it first.", status=409)
        if instance.zone_id != volume.zone_id:
            raise ComputeRefused(
                f"{volume.name} is in {volume.zone.code} and {instance.name} in {instance.zone.code}: "
                "a volume can only be attached to a server in its own zone.",
                "instance",
                409,
            )
        if instance.status not in ATTACHABLE:
            raise ComputeRefused(
                f"{instance.name} is {instance.get_status_display().lower()}: volumes can be attached "
                "to running or stopped servers.",
                "instance",
                409,
            )
        decision = placement_decision(project, volume.zone, lock=True)
        if decision.allowed:
            volume.status = VolumeStatus.IN_USE
            volume.attached_to = instance
            volume.save(update_fields=["status", "attached_to"])
            audit(access, AuditAction.VOLUME_ATTACHED, volume, {"server": [None, instance.name]}, request)
            return volume
    record_placement_denied(
        access=access,
        zone=volume.zone,
        attempted=f"attach volume {volume.name} to {instance.name}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)


@transaction.atomic
def volume_detach(*, access: Access, volume: Volume, request: HttpRequest | None = None) -> Volume:
    """Detach from its server (also from a terminated one). An unattached volume is left as it is."""
    access.require(Perm.RESOURCE_OPERATE)
    lock_project(access)
    volume = _locked_volume(access, volume)
    if volume.status != VolumeStatus.IN_USE:
        return volume
    server = Instance.objects.filter(pk=volume.attached_to_id).values_list("name", flat=True).first()
    volume.status = VolumeStatus.AVAILABLE
    volume.attached_to = None
    volume.save(update_fields=["status", "attached_to"])
    audit(access, AuditAction.VOLUME_DETACHED, volume, {"server": [server, None]}, request)
    return volume


@transaction.atomic
def volume_delete(*, access: Access, volume: Volume, request: HttpRequest | None = None) -> Volume:
    """Mark the volume deleted (the row stays for the audit trail and usage history)."""
    access.require(Perm.RESOURCE_OPERATE)
    lock_project(access)
    volume = _locked_volume(access, volume)
    if volume.status == VolumeStatus.IN_USE:
        server = Instance.objects.filter(pk=volume.attached_to_id).values_list("name", flat=True).first()
        raise ComputeRefused(f"{volume.name} is attached to {server}: detach it first.", status=409)
    volume.status = VolumeStatus.DELETED
    volume.deleted_at = timezone.now()
    volume.save(update_fields=["status", "deleted_at"])
    sync_volume(volume)
    audit(access, AuditAction.VOLUME_DELETED, volume, {"size": [f"{volume.size_gib} GiB", None]}, request)
    return volume
