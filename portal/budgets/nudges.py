"""Forgotten servers: running for more than PORTAL_NUDGE_DAYS days with an average CPU below
PORTAL_NUDGE_CPU_PERCENT over the last week. Each project's owners get one digest a week.

CPU figures come from the backend (`cpu_samples`); a server whose backend reports none is
"unknown", never nudged: a quiet guess would tell people to stop servers that are busy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import groupby

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.budgets.models import NudgeDigest
from portal.budgets.notify import absolute, leases_url, mail_each, owner_emails, usage_url
from portal.budgets.selectors import CENT
from portal.catalog.models import HOURS_PER_MONTH
from portal.compute.backends import BackendError, get_backend
from portal.compute.models import Instance, InstanceStatus
from portal.tenancy.models import Project

log = logging.getLogger(__name__)
CPU_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class ForgottenServer:
    instance: Instance
    days_running: int
    average_cpu: float
    monthly_saving: Decimal  # compute and licence, which stop when the server stops
    disk_monthly: Decimal  # the root disk, which keeps costing while it is stopped

    @property
    def url(self) -> str:
        return absolute(self.instance.get_absolute_url())


def iso_week_start(moment: datetime) -> date:
    day = moment.date()
    return day - timedelta(days=day.weekday())


def average_cpu(instance: Instance, start: datetime, end: datetime) -> float | None:
    """Mean CPU percent over [start, end], or None when the backend cannot say."""
    if not instance.backend_id:
        return None
    try:
        backend = get_backend(instance.zone.backend)
        sampler = getattr(backend, "cpu_samples", None)
        samples = sampler(instance.backend_id, start, end) if sampler else []
    except BackendError as error:
        log.warning("no CPU figures for %s: %s", instance.pk, error.detail)
        return None
    if not samples:
        return None
    return sum(value for _, value in samples) / len(samples)


def forgotten(instance: Instance, now: datetime) -> ForgottenServer | None:
    cpu = average_cpu(instance, now - CPU_WINDOW, now)
    if cpu is None or cpu >= settings.PORTAL_NUDGE_CPU_PERCENT:
        return None
    hourly = instance.flavor.price_hourly + instance.image.license_price_hourly
    disk = instance.root_disk_gib * settings.PORTAL_DISK_PRICE_GIB_HOUR
    return ForgottenServer(
        instance=instance,
        days_running=(now - instance.running_since).days,
        average_cpu=cpu,
        monthly_saving=(hourly * HOURS_PER_MONTH).quantize(CENT, ROUND_HALF_UP),
        disk_monthly=(disk * HOURS_PER_MONTH).quantize(CENT, ROUND_HALF_UP),
    )


def candidates(now: datetime):
    """Running long enough, without a lease (someone already decided when it stops), and in a
    project that has not had this week's digest yet."""
    return (
        Instance.objects.filter(
            status=InstanceStatus.RUNNING,
            running_since__lt=now - timedelta(days=settings.PORTAL_NUDGE_DAYS),
            lease__isnull=True,
        )
        .exclude(project__nudge_digests__week=iso_week_start(now))
        .select_related("project__organization", "zone", "flavor", "image")
        .order_by("project_id", "name")
    )


def digest_send(project: Project, servers: list[ForgottenServer], now: datetime) -> bool:
    """Claim this week's digest for the project and send it; False if it was already sent."""
    saving = sum((s.monthly_saving for s in servers), Decimal(0))
    with transaction.atomic():
        try:
            with transaction.atomic():
                NudgeDigest.objects.create(
                    project=project,
                    week=iso_week_start(now),
                    sent_at=now,
                    instance_names=[s.instance.name for s in servers],
                    monthly_saving=saving,
                )
        except IntegrityError:
            return False
        mail_each(
            "budgets/email/nudge",
            owner_emails(project),
            {
                "project": project,
                "org": project.organization,
                "servers": servers,
                "saving": saving,
                "nudge_days": settings.PORTAL_NUDGE_DAYS,
                "cpu_percent": settings.PORTAL_NUDGE_CPU_PERCENT,
                "leases_url": leases_url(project),
                "usage_url": usage_url(project),
            },
        )
    return True


def nudge_forgotten_all(*, now: datetime | None = None) -> int:
    """Send this week's digests; returns how many projects got one."""
    now = now or timezone.now()
    sent = 0
    for project, instances in groupby(candidates(now), key=lambda i: i.project):
        try:
            servers = [found for instance in instances if (found := forgotten(instance, now))]
            if servers and digest_send(project, servers, now):
                sent += 1
        except Exception:  # one project's failure must not cost the others their digest
            log.exception("forgotten-server digest failed", extra={"project": project.pk})
    return sent
