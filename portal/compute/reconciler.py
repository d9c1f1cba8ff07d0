"""Every minute or so, compare what the portal believes with what is true, and repair it.

- work accepted while the broker was down (or a message lost) is enqueued again;
- operations past their deadline are failed with a reason;
- a server changed outside the portal (stopped from inside, deleted by an operator) is recorded;
- servers carrying our metadata without an instance row are flagged for operators;
- volumes likewise: one changed outside the portal (deleted, broken, attached elsewhere, grown)
  is recorded, and one with our key but no row is flagged;
- a server's firewall rules changed in the cloud (or never applied) are applied again
  (reconciler_firewalls.py), in zones whose cloud enforces them;
- zones' free capacity is refreshed from the backend.
Running it twice, or on two machines at once, changes nothing more than running it once.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.catalog.models import Zone
from portal.compute import notify, runner
from portal.compute.backends import (
    STORAGE_METADATA_KEY,
    BackendError,
    Capability,
    VolumeCloudState,
    VolumeState,
    get_backend,
)
from portal.compute.backends.base import IDEMPOTENCY_METADATA_KEY
from portal.compute.models import (
    ACTIVE_STATES,
    VOLUME_SETTLED,
    BackendOrphan,
    Instance,
    InstanceStatus,
    LaunchBatch,
    Operation,
    Volume,
    VolumeStatus,
)
from portal.compute.operations import STATUS_FOR
from portal.compute.operations.launch_networks import join_ready
from portal.compute.operations.launch_volumes import attach_ready
from portal.compute.reconciler_firewalls import firewall_drift
from portal.compute.reconciler_networks import network_port_drift
from portal.metering.segments import sync_instance, sync_volume

log = logging.getLogger(__name__)
S = InstanceStatus


@dataclass
class Report:
    lost: list[tuple] = field(default_factory=list)  # (operation id, new token, backend) to send
    timed_out: list[str] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)


def reconcile(now=None) -> Report:
    now = now or timezone.now()
    report = Report()
    _claim_lost_work(now, report)
    # Launch volumes whose server and volume are both ready but whose attach a dead worker missed.
    report.lost += [(op.pk, op.step_token, op.volume.zone.backend) for op in attach_ready(sweep=True)]
    # Likewise servers waiting to join the private networks chosen at launch.
    report.lost += [(op.pk, op.step_token, op.network.zone.backend) for op in join_ready(sweep=True)]
    _fail_stuck(now, report)
    _per_zone(report)
    _notify_finished_batches()
    if any(vars(report).values()):
        log.info("reconciled", extra={k: len(v) for k, v in vars(report).items()})
    return report


def _claim_lost_work(now, report: Report) -> None:
    """Operations whose next check is overdue (a message lost while the broker was down, a worker
    killed mid-step): claimed with a new step token, which makes any older message for them stale
    (one chain only), and their next check pushed forward so another reconciler does not take
    them too. The caller sends them; if it cannot, the claim lapses and the next run tries again."""
    # Never claimed: its first message may still be on its way, for a grace period. Claimed: a
    # step's claim pushes `next_check_at` past the step's lease, so overdue means nobody has it.
    grace = timedelta(seconds=settings.COMPUTE_RECONCILE_GRACE_SECONDS)
    overdue = Q(next_check_at__isnull=True, created_at__lt=now - grace) | Q(next_check_at__lt=now)
    lost = Operation.objects.active().filter(deadline__gt=now).filter(overdue)
    candidates = list(lost.values_list("pk", flat=True)[:500])
    if not candidates:
        return
    token = uuid.uuid4().hex
    Operation.objects.filter(pk__in=candidates).filter(overdue).update(
        next_check_at=now + timedelta(seconds=settings.COMPUTE_POLL_SECONDS + 60), step_token=token
    )
    report.lost = list(
        Operation.objects.filter(pk__in=candidates, step_token=token).values_list(
            "pk",
            "step_token",
            Coalesce(
                "instance__zone__backend",
                "volume__zone__backend",
                "snapshot__zone__backend",
                "network__zone__backend",
            ),
        )
    )


def release(lost: list[tuple]) -> None:
    """Give back claims of lost work that could not be sent: the next run takes them again (a
    message that did go out carries the claim's token, which the next claim makes stale)."""
    for operation_id, token, _ in lost:
        Operation.objects.filter(pk=operation_id, step_token=token).update(next_check_at=None)


def _fail_stuck(now, report: Report) -> None:
    for op in (
        Operation.objects.active()
        .filter(deadline__lte=now)
        .select_related("instance__zone", "volume__zone", "snapshot__zone", "network__zone")[:500]
    ):
        runner.fail_operation(op, runner.DEADLINE_MESSAGE, "deadline passed (reconciler)")
        report.timed_out.append(str(op.pk))


def _fix_drift(zone, servers: dict, report: Report) -> None:
    """Compare settled servers of one zone with what its cloud listed (no per-server calls)."""
    settled = (
        # (A server left "restoring disk" with no operation under way: what the cloud says it is.)
        Instance.objects.filter(zone=zone, status__in=[S.RUNNING, S.STOPPED, S.ERROR, S.REBUILDING])
        .exclude(backend_id="")
        .exclude(operations__state__in=ACTIVE_STATES)
        .select_related("project__organization", "flavor", "image")
    )
    for instance in settled.iterator(chunk_size=500):
        state = servers.get(instance.backend_id)
        if instance.status == S.ERROR:
            if state is None:  # the failed server is gone from the cloud: it holds no quota any more
                Instance.objects.filter(pk=instance.pk, status=S.ERROR).update(backend_id="")
            continue
        if state is None:
            observed, fault = S.ERROR, "The server disappeared from the cloud."
        else:
            observed, fault = STATUS_FOR.get(state.state), state.fault
        if observed in (None, instance.status) or observed not in (S.RUNNING, S.STOPPED, S.ERROR):
            continue
        with transaction.atomic():
            changed = Instance.objects.filter(pk=instance.pk, status=instance.status).update(
                status=observed,
                fault_message=fault[:500] if observed == S.ERROR else "",
                running_since=timezone.now() if observed == S.RUNNING else None,
                updated_at=timezone.now(),
            )
            if changed:
                old = instance.status
                instance.status = observed
                sync_instance(instance)
                audit_record(
                    action=AuditAction.INSTANCE_CHANGED_OUTSIDE,
                    organization=instance.project.organization,
                    project=instance.project,
                    target=instance,
                    changes={"status": [old, observed]},
                )
                report.drifted.append(str(instance.pk))


def _notify_finished_batches() -> None:
    """A launch whose e-mail was not sent (a worker died after the commit): send it now."""
    quiet = LaunchBatch.objects.filter(
        notified_at__isnull=True,
        created_at__lt=timezone.now() - timedelta(seconds=settings.COMPUTE_RECONCILE_GRACE_SECONDS),
    ).exclude(instances__operations__state__in=ACTIVE_STATES)
    for batch_id in quiet.values_list("pk", flat=True)[:200]:
        notify.launch_batch_notify(batch_id)


def _per_zone(report: Report) -> None:
    for zone in Zone.objects.filter(region__is_active=True):
        try:
            backend = get_backend(zone.backend)
            servers = backend.list_servers(zone.code)
            capacity = backend.zone_capacity(zone.code)
        except Exception as error:  # one broken zone must not stop the others being reconciled
            log.warning("reconcile: zone unreachable", extra={"zone": zone.code}, exc_info=True)
            detail = error.detail if isinstance(error, BackendError) else f"{type(error).__name__}: {error}"
            Zone.objects.filter(pk=zone.pk).update(
                backend_checked_at=timezone.now(), backend_error=detail[:2000]
            )
            continue
        now = timezone.now()
        Zone.objects.filter(pk=zone.pk).update(
            free_vcpus=capacity.free_vcpus,
            free_ram_gib=capacity.free_ram_gib,
            capacity_updated_at=now,
            backend_checked_at=now,
            backend_error="",
        )
        _fix_drift(zone, {server.backend_id: server for server in servers}, report)
        _volumes(zone, backend, report)
        firewall_drift(zone, backend, report)
        network_port_drift(zone, backend, report)
        keys = {server.metadata.get(IDEMPOTENCY_METADATA_KEY, "") for server in servers} - {""}
        known = {
            str(pk)
            for pk in Instance.objects.filter(pk__in=keys)
            .exclude(status=S.TERMINATED)
            .values_list("pk", flat=True)
        }
        for server in servers:
            key = server.metadata.get(IDEMPOTENCY_METADATA_KEY, "")
            if key and key not in known:
                _, created = BackendOrphan.objects.get_or_create(
                    backend=zone.backend,
                    backend_id=server.backend_id,
                    defaults={"zone_code": zone.code, "idempotency_key": key, "name": server.name[:63]},
                )
                if created:
                    report.orphans.append(server.backend_id)


# --- volumes ----------------------------------------------------------------------------------


def _volumes(zone, backend, report: Report) -> None:
    """Volume drift and orphans of one zone, from one listing (a zone without volumes has none)."""
    try:
        if Capability.VOLUMES not in backend.capabilities(zone.code):
            return
        listed = backend.list_volumes(zone.code)
    except Exception:  # the servers of this zone were reconciled; its volumes wait for the next run
        log.warning("reconcile: volumes unreachable", extra={"zone": zone.code}, exc_info=True)
        return
    _fix_volume_drift(zone, {volume.backend_id: volume for volume in listed}, report)
    _flag_volume_orphans(zone, listed, report)


def _observed(volume: Volume, state: VolumeState | None, servers: dict) -> dict | None:
    """What the cloud's answer makes of a settled volume (the fields to write), or None: the same,
    or the cloud is busy with it (the next run looks again)."""
    V = VolumeCloudState
    if state is None:
        return {
            "status": VolumeStatus.ERROR,
            "fault_message": "The volume disappeared from the cloud.",
            "backend_id": "",
            "attached_to_id": None,
            "device": "",
        }
    if state.state == V.ERROR:
        return {
            "status": VolumeStatus.ERROR,
            "fault_message": (state.fault or "The cloud reports an error.")[:500],
        }
    if state.state not in (V.AVAILABLE, V.IN_USE):
        return None
    changes = {}
    if state.size_gib > volume.size_gib:
        changes["size_gib"] = state.size_gib
    if state.state == V.AVAILABLE and volume.status == VolumeStatus.IN_USE:
        changes |= {"status": VolumeStatus.AVAILABLE, "attached_to_id": None, "device": ""}
    elif state.state == V.IN_USE:
        server = servers.get(state.attached_to)
        if server is None or server.project_id != volume.project_id:
            changes |= {
                "status": VolumeStatus.ERROR,
                "fault_message": "The volume was attached to a server outside this project, in the cloud.",
            }
        elif (volume.status, volume.attached_to_id, volume.device) != (
            VolumeStatus.IN_USE,
            server.pk,
            state.device,
        ):
            changes |= {"status": VolumeStatus.IN_USE, "attached_to_id": server.pk, "device": state.device}
    return changes or None


def _fix_volume_drift(zone, listed: dict, report: Report) -> None:
    settled = (
        Volume.objects.filter(zone=zone, status__in=VOLUME_SETTLED)
        .exclude(backend_id="")
        .exclude(operations__state__in=ACTIVE_STATES)
        .select_related("project__organization")
    )
    servers = {
        server.backend_id: server
        for server in Instance.objects.filter(zone=zone)
        .exclude(backend_id="")
        .exclude(status=S.TERMINATED)
        .only("pk", "backend_id", "project_id", "name")
    }
    for volume in settled.iterator(chunk_size=500):
        changes = _observed(volume, listed.get(volume.backend_id), servers)
        if not changes:
            continue
        with transaction.atomic():
            # Only if nothing changed it meanwhile (a request sets another status with its operation).
            if not Volume.objects.filter(pk=volume.pk, status=volume.status).update(
                **changes, updated_at=timezone.now()
            ):
                continue
            old = volume.status
            for name, value in changes.items():
                setattr(volume, name, value)
            sync_volume(volume)
            audit_record(
                action=AuditAction.VOLUME_CHANGED_OUTSIDE,
                organization=volume.project.organization,
                project=volume.project,
                target=volume,
                changes={"status": [old, volume.status]}
                | ({"size": [None, f"{volume.size_gib} GiB"]} if "size_gib" in changes else {}),
            )
            report.drifted.append(str(volume.pk))


def _flag_volume_orphans(zone, listed: list[VolumeState], report: Report) -> None:
    keyed = {volume.backend_id: volume.metadata.get(STORAGE_METADATA_KEY, "") for volume in listed}
    ids = set()
    for key in set(keyed.values()) - {""}:
        try:
            ids.add(uuid.UUID(key))
        except ValueError:
            continue  # not a key of ours: flagged below
    known = {str(pk) for pk in Volume.objects.filter(pk__in=ids).existing().values_list("pk", flat=True)}
    for volume in listed:
        key = keyed[volume.backend_id]
        if key and key not in known:
            _, created = BackendOrphan.objects.get_or_create(
                backend=zone.backend,
                backend_id=volume.backend_id,
                defaults={
                    "kind": "volume",
                    "zone_code": zone.code,
                    "idempotency_key": key,
                    "name": volume.name[:63],
                },
            )
            if created:
                report.orphans.append(volume.backend_id)
