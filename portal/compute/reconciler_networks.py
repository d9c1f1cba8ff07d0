"""The reconciler's private-network pass, one zone at a time: a server the portal holds as attached
to a network whose port the cloud no longer lists (deleted in the cloud's console, lost with a
host) is recorded as failed on that network, with the reason on the server's page, and audited as
a change outside the portal. The customer can then join it again or take it off. Ports with an
operation under way (on the network or the server), and networks the listing lacks as a whole,
are left alone: the operation, or a later pass, settles them.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.compute.backends import BackendError, Capability, ComputeBackend
from portal.compute.models import ACTIVE_STATES, InstanceStatus, NetworkPort, NetworkStatus, PortStatus

log = logging.getLogger(__name__)
PORT_LOST = "The cloud no longer has this server's port on the network: detach it, then join again."


def network_port_drift(zone, backend: ComputeBackend, report) -> None:
    """`report`: the reconciler's; the servers whose port was lost go in its `drifted`."""
    started = timezone.now()
    ports = (
        NetworkPort.objects.filter(
            network__zone=zone,
            network__status=NetworkStatus.AVAILABLE,
            status=PortStatus.ATTACHED,
            instance__status__in=[InstanceStatus.RUNNING, InstanceStatus.STOPPED],
            updated_at__lt=started,  # attached after the listing was asked for: not in it yet
        )
        .exclude(network__backend_id="")
        .exclude(instance__backend_id="")
        .exclude(network__operations__state__in=ACTIVE_STATES)
        .exclude(instance__operations__state__in=ACTIVE_STATES)
        .select_related("network", "instance__project__organization")
    )
    if not ports.exists():  # listing a cloud's networks costs calls per network: only when needed
        return
    try:
        if Capability.PRIVATE_NETWORKS not in backend.capabilities(zone.code):
            return
        listed = {network.backend_id: network for network in backend.list_networks(zone.code)}
    except BackendError:  # the rest of the zone was reconciled; its networks wait for the next run
        log.warning("reconcile: networks unreachable", extra={"zone": zone.code}, exc_info=True)
        return
    for port in ports.iterator(chunk_size=500):
        state = listed.get(port.network.backend_id)
        if state is None or port.instance.backend_id in state.ports:
            continue
        with transaction.atomic():
            changed = NetworkPort.objects.filter(pk=port.pk, status=PortStatus.ATTACHED).update(
                status=PortStatus.ERROR, fault_message=PORT_LOST, updated_at=timezone.now()
            )
            if changed:
                instance = port.instance
                audit_record(
                    action=AuditAction.INSTANCE_CHANGED_OUTSIDE,
                    organization=instance.project.organization,
                    project=instance.project,
                    target=instance,
                    changes={"network": [port.network.name, None]},
                )
                report.drifted.append(str(instance.pk))
                log.warning(
                    "reconcile: network port lost",
                    extra={"server": str(port.instance_id), "network": str(port.network_id)},
                )
