"""Bearer-token authentication and the per-token rate limit.

Only `Authorization: Bearer npt_…` authenticates: the session cookie of the web portal does not, so
the API needs no CSRF protection and a browser tab can't be made to call it.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja.errors import AuthenticationError, Throttled
from ninja.security import HttpBearer

from portal.api.models import TOKEN_PREFIX, ApiToken, hash_secret
from portal.audit.models import AuditAction
from portal.audit.services import audit_record, client_ip
from portal.lib.ratelimit import consume
from portal.tenancy.models import Membership

RATE_WINDOW_SECONDS = 60
# last_used_at is written at most this often per token: not a database write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A use is audited the first time, from a new address, or after this long without use.
AUDIT_USE_AFTER = timedelta(hours=1)


class TokenInvalid(AuthenticationError):
    def __init__(self, message: str) -> None:
        super().__init__(401, message)


class RateLimited(Throttled):
    def __init__(self, wait: int, limit: int) -> None:
        super().__init__(wait)
        self.limit = limit


def resolve_token(secret: str) -> ApiToken:
    """The active token for `secret`; raises TokenInvalid saying why not.

    The lookup is by SHA-256 of the secret (an indexed equality on a hash): timing reveals nothing
    about the secret, unlike comparing secrets character by character.
    """
    if not secret.startswith(TOKEN_PREFIX):
        raise TokenInvalid("That is not a Nimbus API token (they start with “npt_”).")
    token = (
        ApiToken.objects.select_related("user", "organization", "project")
        .filter(token_hash=hash_secret(secret))
        .first()
    )
    if token is None:
        raise TokenInvalid("Unknown token: check that you copied it whole.")
    if token.is_revoked:
        raise TokenInvalid(f"The token “{token.name}” has been revoked.")
    if token.is_expired:
        raise TokenInvalid(
            f"The token “{token.name}” expired on {token.expires_at:%Y-%m-%d %H:%M} UTC; create a new one."
        )
    if (
        not token.user.is_active
        or not Membership.objects.filter(
            user_id=token.user_id, organization_id=token.organization_id
        ).exists()
    ):
        raise TokenInvalid(
            f"The token “{token.name}” no longer works: its owner is not a member of "
            f"{token.organization.name} any more."
        )
    return token


def check_rate(token: ApiToken) -> None:
    limit = settings.PORTAL_API_RATE_LIMIT_PER_MINUTE
    if not consume(f"api-token:{token.pk}", limit=limit, window=RATE_WINDOW_SECONDS):
        now = time.time()
        window_end = (now // RATE_WINDOW_SECONDS + 1) * RATE_WINDOW_SECONDS
        raise RateLimited(max(1, math.ceil(window_end - now)), limit)


def record_use(token: ApiToken, request: HttpRequest) -> None:
    """Note when and from where the token was last used (at most once a minute; audited sometimes)."""
    now = timezone.now()
    previous, ip = token.last_used_at, client_ip(request)
    if previous is not None and now - previous < LAST_USED_RESOLUTION and ip == token.last_used_ip:
        return
    # A conditional UPDATE: of concurrent requests only the first writes (and audits).
    claimed = (
        ApiToken.objects.filter(pk=token.pk, last_used_at=previous).update(last_used_at=now, last_used_ip=ip)
        if previous is not None
        else ApiToken.objects.filter(pk=token.pk, last_used_at__isnull=True).update(
            last_used_at=now, last_used_ip=ip
        )
    )
    if not claimed:
        return
    if previous is None or ip != token.last_used_ip or now - previous >= AUDIT_USE_AFTER:
        audit_record(
            action=AuditAction.API_TOKEN_USED,
            organization=token.organization,
            project=token.project,
            target=token,
            changes={"from": [token.last_used_ip, ip]} if token.last_used_ip != ip else {},
            actor=token.user,
            request=request,
        )
    token.last_used_at, token.last_used_ip = now, ip


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`; every failure is a 401 problem saying why."""

    def __call__(self, request: HttpRequest) -> ApiToken:
        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if not header:
            raise TokenInvalid("Send your API token: Authorization: Bearer npt_….")
        if scheme.lower() != "bearer" or not secret.strip():
            raise TokenInvalid("Use the Bearer scheme: Authorization: Bearer npt_….")
        return self.authenticate(request, secret.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken:
        found = resolve_token(token)
        check_rate(found)
        record_use(found, request)
        return found
