"""The reconciler's firewall pass, one zone at a time: for each settled server of a zone whose
cloud enforces rules (Capability.FIREWALL), the rules the cloud holds (`server_firewall`) against
the rules the portal holds. The same: the server is recorded as applied (a launch's rules are
confirmed here). Different (changed in the cloud's console, an apply cut off half-way, a launch
that read the rules before a change): an apply is queued, audited as a change outside the portal
and logged. A server whose last apply failed is tried again only after FAILED_RETRY, so a rule
the cloud refuses is not asked for every minute; a server with an apply under way is left to it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Subquery
from django.utils import timezone

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.compute.backends import BackendError, Capability, ComputeBackend
from portal.compute.backends.firewall import rules_hash, same_rules
from portal.compute.models import (
    ACTIVE_STATES,
    Action,
    FirewallState,
    Instance,
    InstanceStatus,
    Operation,
)
from portal.compute.operations.firewalls import desired_rules, new_applies

log = logging.getLogger(__name__)
FAILED_RETRY = timedelta(minutes=15)


def _same(seen, wanted) -> bool:
    try:
        return same_rules(seen, wanted)
    except BackendError:  # a rule the portal cannot write (another group's members): not ours
        return False


def firewall_drift(zone, backend: ComputeBackend, report) -> None:
    """`report`: the reconciler's; the applies queued go with its lost work, to be sent."""
    try:
        if Capability.FIREWALL not in backend.capabilities(zone.code):
            return
    except BackendError:
        return
    now = timezone.now()
    applies = Operation.objects.filter(instance=OuterRef("pk"), action=Action.FIREWALL_APPLY)
    servers = (
        Instance.objects.filter(zone=zone, status__in=[InstanceStatus.RUNNING, InstanceStatus.STOPPED])
        .exclude(backend_id="")
        .exclude(Exists(applies.filter(state__in=ACTIVE_STATES)))
        .select_related("zone", "project__organization")
        .annotate(
            last_apply=Subquery(
                applies.order_by().values("instance").annotate(at=Max("finished_at")).values("at")
            )
        )
    )
    for instance in servers.iterator(chunk_size=200):
        failed_lately = instance.firewall_state == FirewallState.FAILED and (
            instance.last_apply is None or instance.last_apply > now - FAILED_RETRY
        )
        if failed_lately:
            continue
        try:
            seen = backend.server_firewall(instance.backend_id)
        except BackendError:
            log.warning("reconcile: firewall unreadable", extra={"server": str(instance.pk)}, exc_info=True)
            continue
        wanted = desired_rules(instance)
        if _same(seen, wanted):
            digest = rules_hash(wanted)
            if (instance.firewall_state, instance.firewall_applied_hash) != (FirewallState.APPLIED, digest):
                Instance.objects.filter(pk=instance.pk, firewall_state=instance.firewall_state).update(
                    firewall_state=FirewallState.APPLIED,
                    firewall_applied_hash=digest,
                    firewall_applied_at=now,
                    firewall_message="",
                )
            continue
        with transaction.atomic():
            ops = new_applies([instance])
            if not ops:
                continue
            audit_record(
                action=AuditAction.INSTANCE_CHANGED_OUTSIDE,
                organization=instance.project.organization,
                project=instance.project,
                target=instance,
                changes={"firewall rules": ["not the portal's in the cloud", "applied again"]},
            )
        log.warning("reconcile: firewall drift, applying again", extra={"server": str(instance.pk)})
        report.drifted.append(str(instance.pk))
        report.lost += [(op.pk, op.step_token, zone.backend) for op in ops]
