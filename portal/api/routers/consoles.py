"""A server's console over the API: a one-time ticket for the serial console's websocket (and, in
clouds that serve their own, the address of that console), and its root password reset, with the
web page's rules."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema

from portal.api.access import token_projects
from portal.api.errors import ApiProblem
from portal.api.idempotency import idempotency_claim
from portal.api.routers.common import get_instance, token_of
from portal.api.schemas import Problem
from portal.audit.models import AuditAction, AuditEvent
from portal.compute.backends import BackendError, Transient
from portal.compute.services import passwords
from portal.compute.services.consoles import console_grant
from portal.compute.views.consoles import websocket_url
from portal.tenancy.access import Perm

router = Router(tags=["instances"])
ERRORS = {401: Problem, 403: Problem, 404: Problem, 409: Problem, 422: Problem, 429: Problem, 503: Problem}


class ConsoleOut(Schema):
    websocket_url: str | None  # wss://…/ws/servers/{id}/console/?ticket=… (opens one session)
    expires_at: datetime | None  # the ticket must be presented before this
    # the server's display as RFB over a websocket (binary frames; a VNC client such as noVNC),
    # where the portal relays it (libvirt): the same one-time ticket, for one session of either
    graphical_websocket_url: str | None = None
    console_url: str | None  # the cloud's own console (OpenStack noVNC…), valid for a short while
    console_protocol: str | None


@router.post(
    "/instances/{instance_id}/console", response={200: ConsoleOut, **ERRORS}, summary="Open a console"
)
def open_console(request: HttpRequest, instance_id: UUID):
    """A serial console ticket: connect a websocket to `websocket_url` within `expires_at` (60 s);
    binary frames are the console's bytes both ways (text frames from the portal are JSON about the
    session). It opens one session only. Where the cloud serves a console of its own, `console_url`
    is its address; where the portal relays the server's display, `graphical_websocket_url` is a
    websocket of raw RFB bytes (the same ticket: it opens one of the two). Needs a read-write token of someone who may connect (owners, admins, members)."""
    instance, access = get_instance(request, instance_id, Perm.CONSOLE)
    try:
        grant = console_grant(access=access, instance=instance, request=request)
    except BackendError as error:
        status = 503 if isinstance(error, Transient) else 409
        raise ApiProblem(
            status, error.user_message, kind="cloud-unavailable" if status == 503 else "refused"
        ) from None
    return ConsoleOut(
        websocket_url=websocket_url(request, grant.websocket_path) if grant.websocket_path else None,
        graphical_websocket_url=websocket_url(request, grant.graphical_websocket_path)
        if grant.graphical_websocket_path
        else None,
        expires_at=grant.expires_at,
        console_url=grant.remote.url if grant.remote else None,
        console_protocol=grant.remote.protocol if grant.remote else None,
    )


class PasswordOut(Schema):
    user: str  # the guest's user whose password was set: root
    password: str | None  # the new password, in this answer only; null on an Idempotency-Key replay
    reset_at: datetime


@router.post(
    "/instances/{instance_id}/password",
    response={200: PasswordOut, **ERRORS},
    summary="Reset the root password",
)
def reset_password(request: HttpRequest, response: HttpResponse, instance_id: UUID):
    """Set a new, generated root password on a running server, where its zone can (the zone's
    `password_reset` capability); the current one stops working. The password is in this answer
    and nowhere else: the portal keeps no copy. 409 when the server is not running or its zone (or
    its image) cannot; needs a read-write token of someone who may connect to the console.

    With an `Idempotency-Key`, a retry of a reset that succeeded resets nothing again and answers
    200 with `password: null` (and `Idempotent-Replayed: true`): the password was shown once. If
    that first answer was lost, reset again with a new key."""
    token = token_of(request)
    with idempotency_claim(request, response) as claim:
        resets = AuditEvent.objects.filter(
            action=AuditAction.INSTANCE_PASSWORD_RESET,
            project__in=token_projects(token),
            target_id=str(instance_id),
        )
        event = claim.replayed(resets)
        if event is not None:
            return PasswordOut(user=passwords.ROOT, password=None, reset_at=event.created_at)
        instance, access = get_instance(request, instance_id, Perm.CONSOLE)
        reset = passwords.instance_password_reset(access=access, instance=instance, request=request)
        claim.remember(reset.event)
    return PasswordOut(user=reset.user, password=reset.password, reset_at=reset.event.created_at)
