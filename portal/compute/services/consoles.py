"""Consoles: who may open one, the one-time ticket that opens a console session (the serial
console, or a graphical console the portal relays), its checks while it is open and its record
(docs/console.md).

A ticket is issued by `console_grant` (the server page's buttons, `POST …/instances/{id}/console`
in the API) to a user who may connect (Perm.CONSOLE) to a running server in a zone that has a
serial console or a relayed graphical console; it opens either, once. The websocket that presents it within CONSOLE_TICKET_SECONDS opens the session
(`console_session_open`, once: a conditional UPDATE); the same access check a view makes is made
again then, and every CONSOLE_RECHECK_SECONDS while it is open (`console_session_refusal`).
Opening and closing are audited, the close with how long the session lasted.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest
from django.utils import timezone

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.compute.backends import Capability, RemoteConsole, get_backend, not_available
from portal.compute.models import ConsoleSession, Instance, InstanceStatus
from portal.compute.models.consoles import ticket_digest
from portal.compute.services.common import ComputeRefused
from portal.tenancy.access import Access, Perm, project_access

log = logging.getLogger(__name__)

# A session stays open while the server is in one of these (a reboot keeps the serial line; the
# rescue system answers on it too: that is how a customer who locked themselves out gets in).
CONSOLE_STATUSES = frozenset({InstanceStatus.RUNNING, InstanceStatus.REBOOTING, InstanceStatus.RESCUE})


class ConsoleRefused(Exception):
    """A websocket that may not have (or keep) a console; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ConsoleGrant:
    """What a customer gets to open a server's console: a ticket for the portal's serial console,
    or the address of the cloud's own console (or both)."""

    instance: Instance
    session: ConsoleSession | None = None
    ticket: str = ""
    expires_at: datetime | None = None
    remote: RemoteConsole | None = None
    serial: bool = False  # the ticket opens the serial console
    graphical: bool = False  # … and/or the server's display, relayed by the portal (noVNC)

    @property
    def websocket_path(self) -> str:
        if not (self.ticket and self.serial):
            return ""
        return f"/ws/servers/{self.instance.pk}/console/?ticket={self.ticket}"

    @property
    def graphical_websocket_path(self) -> str:
        if not (self.ticket and self.graphical):
            return ""
        return f"/ws/servers/{self.instance.pk}/graphical-console/?ticket={self.ticket}"


def console_capabilities(instance: Instance) -> set[Capability]:
    """Which consoles the server's zone has (raises BackendError when the cloud can't be asked)."""
    console_kinds = {Capability.SERIAL_CONSOLE, Capability.GRAPHICAL_CONSOLE}
    return get_backend(instance.zone.backend).capabilities(instance.zone.code) & console_kinds


def console_grant(*, access: Access, instance: Instance, request: HttpRequest | None = None) -> ConsoleGrant:
    """A one-time ticket for the server's serial console and/or the cloud console's address.
    Raises ComputeRefused (not running, no console in the zone) or BackendError (the cloud)."""
    access.require(Perm.CONSOLE)
    if instance.status not in CONSOLE_STATUSES:
        raise ComputeRefused(
            f"{instance.name} is {instance.get_status_display().lower()}: its console is there while it runs.",
            status=409,
        )
    kinds = console_capabilities(instance)
    if not kinds:
        raise ComputeRefused(
            not_available(Capability.SERIAL_CONSOLE, instance.zone.code).user_message, status=409
        )
    user = access.membership.user
    grant = ConsoleGrant(instance=instance)
    backend = get_backend(instance.zone.backend)
    relayed = Capability.GRAPHICAL_CONSOLE in kinds and backend.RELAYS_GRAPHICAL_CONSOLE
    if Capability.GRAPHICAL_CONSOLE in kinds and not relayed:
        remote = backend.remote_console(instance.backend_id)
        audit_record(
            action=AuditAction.REMOTE_CONSOLE_ISSUED,
            actor=user,
            organization=access.organization,
            project=access.project,
            target=instance,
            changes={"protocol": [None, remote.protocol]},
            request=request,
        )
        grant = ConsoleGrant(instance=instance, remote=remote)
    if Capability.SERIAL_CONSOLE in kinds or relayed:
        ticket = secrets.token_urlsafe(32)
        expires_at = timezone.now() + timedelta(seconds=settings.CONSOLE_TICKET_SECONDS)
        session = ConsoleSession.objects.create(
            ticket_hash=ticket_digest(ticket),
            user=user,
            instance=instance,
            expires_at=expires_at,
            api_token=getattr(access, "token", None),  # an API caller's TokenAccess has one
        )
        grant = ConsoleGrant(
            instance=instance,
            session=session,
            ticket=ticket,
            expires_at=expires_at,
            remote=grant.remote,
            serial=Capability.SERIAL_CONSOLE in kinds,
            graphical=relayed,
        )
    return grant


def _refusal(session: ConsoleSession) -> str:
    """Why this session may not be (or stay) open now; "" when it may. The same access check a
    view makes, with the user's current role, and the server's current status."""
    instance = session.instance
    project = instance.project
    try:
        project_access(session.user, project.organization.slug, project.slug, Perm.CONSOLE)
    except (Http404, PermissionDenied):
        return "You no longer have access to this server's console."
    if not session.user.is_active:
        return "You no longer have access to this server's console."
    token = session.api_token
    if token is not None and (token.revoked_at is not None or token.expires_at <= timezone.now()):
        return "The API token that opened this console was revoked or has expired."
    if instance.status not in CONSOLE_STATUSES:
        return f"{instance.name} is {instance.get_status_display().lower()}: the console was closed."
    return ""


def _session(**lookup) -> ConsoleSession | None:
    return (
        ConsoleSession.objects.select_related(
            "user", "api_token", "instance__project__organization", "instance__zone"
        )
        .filter(**lookup)
        .first()
    )


def console_session_open(
    *, ticket: str, instance_id: uuid.UUID, ip_address: str | None = None, kind: str = "serial"
) -> ConsoleSession:
    """Consume the ticket and open its session, or raise ConsoleRefused: a ticket opens one
    session at most, only for its server and before it expires. `kind` ("serial", "graphical")
    is which console the websocket relays: the audit says so."""
    digest = ticket_digest(ticket)
    now = timezone.now()
    with transaction.atomic():
        claimed = ConsoleSession.objects.filter(
            ticket_hash=digest, instance_id=instance_id, opened_at=None, closed_at=None, expires_at__gt=now
        ).update(opened_at=now, ip_address=ip_address)
        session = _session(ticket_hash=digest, instance_id=instance_id)
        if not claimed:
            if session is None:
                raise ConsoleRefused(
                    "This console ticket is not valid: open the console again from the server's page."
                )
            if session.opened_at is not None or session.closed_at is not None:
                raise ConsoleRefused("This console ticket was used already: open the console again.")
            raise ConsoleRefused("This console ticket has expired: open the console again.")
        reason = _refusal(session)
        if reason:
            session.closed_at, session.close_reason = now, reason[:200]
            session.save(update_fields=["closed_at", "close_reason"])
        else:
            audit_record(
                action=AuditAction.CONSOLE_OPENED,
                actor=session.user,
                organization=session.instance.project.organization,
                project=session.instance.project,
                target=session.instance,
                changes={"session": [None, str(session.pk)], "console": [None, kind]},
                ip_address=ip_address,
            )
    if reason:
        raise ConsoleRefused(reason)
    return session


def console_session_refusal(session_id: uuid.UUID) -> str:
    """Asked while a session is open: "" while it may stay open, else why it must close."""
    session = _session(pk=session_id)
    if session is None or session.closed_at is not None:
        return "The console session has ended."
    return _refusal(session)


def console_session_close(*, session_id: uuid.UUID, reason: str) -> ConsoleSession | None:
    """Record the end of a session, once (a second call changes nothing), with its duration."""
    with transaction.atomic():
        closed = ConsoleSession.objects.filter(pk=session_id, closed_at=None).update(
            closed_at=timezone.now(), close_reason=reason[:200]
        )
        session = _session(pk=session_id)
        if closed and session is not None and session.opened_at is not None:
            audit_record(
                action=AuditAction.CONSOLE_CLOSED,
                actor=session.user,
                organization=session.instance.project.organization,
                project=session.instance.project,
                target=session.instance,
                changes={
                    "session": [None, str(session.pk)],
                    "duration_seconds": [None, session.duration_seconds],
                    "reason": [None, session.close_reason],
                },
                ip_address=session.ip_address,
            )
    return session


def console_group(instance_id: uuid.UUID) -> str:
    """The channel-layer group of a server's open console sessions."""
    return f"console.{uuid.UUID(str(instance_id)).hex}"


def console_sessions_end(instance: Instance, reason: str) -> None:
    """Tell the server's open console sessions, in whichever web process, to close now (after a
    stop or terminate commits). Best effort: each session also re-checks on its own."""
    if not ConsoleSession.objects.filter(instance=instance, opened_at__isnull=False, closed_at=None).exists():
        return
    from channels.layers import get_channel_layer

    try:
        async_to_sync(get_channel_layer().group_send)(
            console_group(instance.pk), {"type": "console.end", "reason": reason}
        )
    except Exception:  # the channel layer is down: the sessions' own checks close them
        log.warning("could not tell the console sessions of %s to close", instance.pk, exc_info=True)
