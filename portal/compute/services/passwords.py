"""Root password reset: the cloud sets a new root password in the running guest (Nova's
changePassword, the simulated guest's shadow), and the customer sees it once (docs/console.md).

Synchronous, not an operation of the runner: an operation's params are stored (and retried by a
worker later), and the password must never be stored in plain text, not in Operation.params, the
audit log or a log line. So the request calls the cloud itself, within the backend's own timeout
(OpenStack: the connection's `timeout` option, 30 s by default; Nova answers once the compute host
has set it), records who reset it (without the password) and hands the password back to the one
page or API answer that shows it. A failure changes nothing the portal keeps, and the customer
simply asks again; a success is not repeated by a retry (the API's Idempotency-Key replays
answer without the password).

Who may: those who may connect to the console (Perm.CONSOLE): a root password is what the console
asks for, so it gives the same power. Only a running server, in a zone that declares
Capability.PASSWORD_RESET.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from django.http import HttpRequest

from portal.audit.models import AuditAction, AuditEvent
from portal.audit.services import audit_record
from portal.compute.backends import BackendError, Capability, Transient, get_backend
from portal.compute.models import Instance, InstanceStatus
from portal.compute.services.common import ComputeRefused
from portal.compute.snapshot_rules import capability_refusal
from portal.tenancy.access import Access, Perm

ROOT = "root"
# Letters and digits without the look-alikes (0 O o 1 l I): typed from a screen into a console
# more often than pasted. 24 of 54 symbols: about 138 bits.
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0Oo1lI")
PASSWORD_LENGTH = 24


@dataclass(frozen=True)
class PasswordReset:
    """The answer to one reset: `password` is shown once and then forgotten."""

    instance: Instance
    user: str
    password: str
    event: AuditEvent  # the audit record of the reset (what an API replay answers with)


def password_reset_refusal(instance: Instance, refusal: str | None = None) -> str:
    """Why the server's zone cannot reset passwords, in plain words, or "". `refusal`: the
    zone's answer already asked for the page (capability_refusals), to ask only once."""
    if refusal is None:
        refusal = capability_refusal(instance.zone, Capability.PASSWORD_RESET)
    if not refusal:
        return ""
    try:
        reason = get_backend(instance.zone.backend).absent_reason(
            instance.zone.code, Capability.PASSWORD_RESET
        )
    except BackendError:
        reason = ""
    return f"{refusal} {reason}".strip()


def new_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def instance_password_reset(
    *, access: Access, instance: Instance, request: HttpRequest | None = None
) -> PasswordReset:
    """Set a new, generated root password on the running server and return it (once). Raises
    PermissionDenied (a role that may not connect), ComputeRefused: not running (409), no password
    reset in the zone (409), the cloud refused (409) or could not be reached (503)."""
    access.require(Perm.CONSOLE)
    if instance.status != InstanceStatus.RUNNING or not instance.backend_id:
        raise ComputeRefused(
            f"{instance.name} is {instance.get_status_display().lower()}: "
            "its root password can be reset while it runs.",
            status=409,
        )
    if refusal := password_reset_refusal(instance):
        raise ComputeRefused(refusal, status=409)
    password = new_password()
    try:
        get_backend(instance.zone.backend).set_password(instance.backend_id, ROOT, password)
    except BackendError as error:
        raise ComputeRefused(
            error.user_message, status=503 if isinstance(error, Transient) else 409
        ) from None
    event = audit_record(
        action=AuditAction.INSTANCE_PASSWORD_RESET,
        actor=access.membership.user,
        organization=access.organization,
        project=access.project,
        target=instance,
        changes={"user": [None, ROOT]},  # who and when; never the password
        request=request,
    )
    return PasswordReset(instance=instance, user=ROOT, password=password, event=event)
