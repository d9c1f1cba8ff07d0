"""Idempotency-Key for POST: a retried request gets the first answer instead of a second launch.

The key is claimed by inserting a row (unique per token and key) in the same transaction as the
work it protects. A concurrent request with the same key waits on that row (PostgreSQL: the unique
index; SQLite: the write lock) and, once the first commits, replays its answer; if the first
failed and rolled back, the second does the work. A 5xx is not remembered, so a retry runs again.
Keys are kept for PORTAL_API_IDEMPOTENCY_HOURS (24 h); the beat task `purge_idempotency_keys`
deletes older ones and an expired key found on the way is treated as new.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Status
from pydantic import BaseModel

from portal.api.errors import ApiProblem
from portal.api.models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


class _Rollback(Exception):
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


def fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode(), request.body):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()


def _render(request: HttpRequest, view, args, kwargs) -> HttpResponse:
    """Run the endpoint and render its answer (or its error) the way ninja would."""
    from portal.api.api import api

    try:
        result = view(request, *args, **kwargs)
    except Exception as exc:  # turned into its problem response, like every other endpoint's
        return api.on_exception(request, exc)
    if isinstance(result, HttpResponse):
        return result
    status, value = (result.status_code, result.value) if isinstance(result, Status) else (200, result)
    if isinstance(value, BaseModel):
        value = value.model_dump()
    return api.create_response(request, value, status=status)


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        record.response_body, status=record.response_status, content_type=record.response_content_type
    )
    response[REPLAYED_HEADER] = "true"
    return response


def idempotent(view):
    """Decorate a POST endpoint (under the router's decorator) to honour Idempotency-Key."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        key = request.headers.get(HEADER)
        if key is None:
            return _render(request, view, args, kwargs)
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ApiProblem(
                400,
                f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters, e.g. a UUID.",
                kind="invalid-idempotency-key",
            )
        token = request.auth
        request_hash = fingerprint(request)
        try:
            with transaction.atomic():
                cutoff = timezone.now() - timedelta(hours=settings.PORTAL_API_IDEMPOTENCY_HOURS)
                IdempotencyRecord.objects.filter(token=token, key=key, created_at__lt=cutoff).delete()
                try:
                    with transaction.atomic():
                        record = IdempotencyRecord.objects.create(
                            token=token, key=key, fingerprint=request_hash
                        )
                except IntegrityError:  # another request had the key: its transaction has committed
                    record = IdempotencyRecord.objects.get(token=token, key=key)
                    if record.fingerprint != request_hash:
                        raise ApiProblem(
                            422,
                            f"This {HEADER} was already used for a different request (another path or "
                            "body). Use a new key for a new request.",
                            kind="idempotency-key-reused",
                        ) from None
                    return _replay(record)
                response = _render(request, view, args, kwargs)
                if response.status_code >= 500:
                    raise _Rollback(response)  # forget the key: a retry should run again
                record.response_status = response.status_code
                record.response_body = response.content.decode()
                record.response_content_type = response.get("Content-Type", "application/json")
                record.save(update_fields=["response_status", "response_body", "response_content_type"])
                return response
        except _Rollback as rollback:
            return rollback.response

    return wrapper
