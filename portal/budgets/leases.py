"""Leases: a reminder e-mail a day before `stop_at`, then the server is stopped as if the person
who set the lease had clicked Stop (or an owner, if that person has left or may no longer operate
servers). A lease whose server is no longer running has nothing left to do and is dropped.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.budgets.models import InstanceLease
from portal.budgets.notify import leases_url, mail_each
from portal.budgets.selectors import money
from portal.catalog.models import HOURS_PER_MONTH
from portal.compute.models import Action, InstanceStatus
from portal.compute.services import ComputeRefused, instance_action
from portal.tenancy.access import Access, Perm, org_access
from portal.tenancy.models import Membership, Role

log = logging.getLogger(__name__)
REMIND_BEFORE = timedelta(hours=24)
# Statuses in which a lease still has work to do; "starting" and "rebooting" end up running.
WAITING = {InstanceStatus.STARTING, InstanceStatus.REBOOTING}


def lease_access(lease: InstanceLease) -> Access | None:
    """Whose name the stop goes in: the lease's creator while they may operate servers, else the
    longest-standing owner who may."""
    project = lease.instance.project
    memberships = []
    if lease.created_by is not None:
        with suppress(Http404):  # no longer a member: an owner instead
            memberships.append(org_access(lease.created_by, project.organization.slug).membership)
    memberships += (
        Membership.objects.select_related("organization", "user")
        .filter(organization_id=project.organization_id, role=Role.OWNER)
        .order_by("created_at")
    )
    for membership in memberships:
        access = Access(membership, project)
        if access.can(Perm.RESOURCE_OPERATE) and membership.user.has_verified_email:
            return access
    return None


def _load(lease_id: int) -> InstanceLease | None:
    return (
        InstanceLease.objects.select_related(
            "instance__project__organization", "instance__flavor", "instance__image", "created_by"
        )
        .filter(pk=lease_id)
        .first()
    )


def _drop_if_done(lease: InstanceLease) -> bool:
    status = lease.instance.status
    if status == InstanceStatus.RUNNING or status in WAITING:
        return False
    InstanceLease.objects.filter(pk=lease.pk).delete()
    return True


def lease_remind(lease_id: int, *, now: datetime | None = None) -> bool:
    """Send the one reminder; False if it was sent before or there is nothing to remind of."""
    now = now or timezone.now()
    lease = _load(lease_id)
    if lease is None or lease.reminded_at is not None or _drop_if_done(lease):
        return False
    access = lease_access(lease)
    with transaction.atomic():
        if not InstanceLease.objects.filter(pk=lease.pk, reminded_at=None).update(reminded_at=now):
            return False  # another worker reminded
        if access is not None:
            instance = lease.instance
            disk = instance.root_disk_gib * settings.PORTAL_DISK_PRICE_GIB_HOUR * HOURS_PER_MONTH
            mail_each(
                "budgets/email/lease_reminder",
                [access.membership.user.email],
                {
                    "lease": lease,
                    "instance": instance,
                    "project": instance.project,
                    "leases_url": leases_url(instance.project),
                    "disk_monthly": money(disk),
                },
            )
    return True


def lease_expire(lease_id: int, *, now: datetime | None = None) -> bool:
    """Stop the server of a lease that is due; True if a stop was requested."""
    now = now or timezone.now()
    lease = _load(lease_id)
    if lease is None or lease.stop_at > now or _drop_if_done(lease):
        return False
    instance = lease.instance
    if instance.status in WAITING:
        return False  # look again next time, once it is running
    access = lease_access(lease)
    with transaction.atomic():
        if not InstanceLease.objects.filter(pk=lease.pk).delete()[0]:
            return False  # another worker took it
        # If the stop can't be asked for, the lease stays (undo its deletion) and is tried again.
        if access is None:
            log.warning("lease of %s ended but nobody may stop it", instance.pk)
            transaction.set_rollback(True)
            return False
        try:
            with transaction.atomic():
                instance_action(access=access, instance=instance, action=Action.STOP)
        except (ComputeRefused, PermissionDenied) as error:
            log.warning("lease of %s ended; stop refused: %s", instance.pk, error)
            transaction.set_rollback(True)
            return False
        audit_record(
            action=AuditAction.LEASE_EXPIRED,
            organization=instance.project.organization,
            project=instance.project,
            target=instance,
            changes={"stop_at": [lease.stop_at.isoformat(), None]},
            actor=access.membership.user,
        )
    return True


def leases_enforce(*, now: datetime | None = None) -> tuple[int, int]:
    """Send due reminders and stop due servers; returns (reminded, stopped)."""
    now = now or timezone.now()
    reminders = InstanceLease.objects.filter(
        reminded_at=None, stop_at__gt=now, stop_at__lte=now + REMIND_BEFORE
    ).values_list("pk", flat=True)
    reminded = sum(lease_remind(pk, now=now) for pk in list(reminders))
    due = InstanceLease.objects.filter(stop_at__lte=now).values_list("pk", flat=True)
    stopped = sum(lease_expire(pk, now=now) for pk in list(due))
    return reminded, stopped
