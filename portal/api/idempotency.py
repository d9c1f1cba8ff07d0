"""Idempotency-Key for POST: a retried request is told about what the first one created instead of
creating it again. An endpoint wraps its work in `idempotency_claim`:

    with idempotency_claim(request, response) as claim:
        batch = claim.replayed(LaunchBatch.objects.filter(project__in=token_projects(token)))
        if batch is None:
            batch = claim.remember(services.instance_launch(...))
    return Status(202, launch_out(request, batch))

The claim inserts a row (unique per token and key) and keeps its transaction open around the work;
`remember` notes the object the work created before the commit. A concurrent request with the same
key waits on that row (PostgreSQL: the unique index; SQLite: the write lock) and, once the first
commits, `replayed` loads the object: the endpoint describes it as usual (the same schema and status
as the first answer, showing the object as it is now) and the answer carries `Idempotent-Replayed`.

Only a success is remembered, so a retry with the key runs again after either of:
- a refusal (4xx): the row is deleted and what the service kept on purpose stays, as without a
  key (a refused placement is audited);
- a failure (5xx): the whole transaction is rolled back, the work with the key.
Keys are kept for PORTAL_API_IDEMPOTENCY_HOURS (24 h); the beat task `purge_idempotency_keys`
deletes older ones and an expired key found on the way is treated as new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from portal.api.errors import ApiProblem, status_for
from portal.api.models import ApiToken, IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


def fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode(), request.body):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()


def _key(request: HttpRequest) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApiProblem(
            400,
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters, e.g. a UUID.",
            kind="invalid-idempotency-key",
        )
    return key


class Claim:
    """What an endpoint holds while it works under an Idempotency-Key (or without one)."""

    def __init__(
        self, response: HttpResponse, record: IdempotencyRecord | None = None, *, replay: bool = False
    ) -> None:
        self.response = response  # ninja's response for the endpoint's answer: gets the replay header
        self.record = record
        self.replay = replay

    def replayed[M: models.Model](self, queryset: models.QuerySet[M]) -> M | None:
        """The object the first request with this key created, from `queryset`; None when this
        request is the first (or has no key): then do the work and `remember` its result."""
        if not self.replay:
            return None
        record = self.record
        model_type = ContentType.objects.get_for_model(queryset.model)
        found = queryset.filter(pk=record.target_id).first() if record.target_type == model_type else None
        if found is None:
            raise ApiProblem(
                409,
                f"The {queryset.model._meta.verbose_name} this {HEADER} created is gone. Use a new key "
                "for a new request.",
                kind="idempotency-target-gone",
            )
        self.response[REPLAYED_HEADER] = "true"
        return found

    def remember[M: models.Model](self, created: M) -> M:
        if self.record is not None:
            self.record.target_type = ContentType.objects.get_for_model(created)
            self.record.target_id = str(created.pk)
            self.record.save(update_fields=["target_type", "target_id"])
        return created


def _claim(token: ApiToken, key: str, request_hash: str) -> tuple[IdempotencyRecord, bool]:
    """Insert the key's row, or find the committed one of an earlier request (after waiting for it)."""
    cutoff = timezone.now() - timedelta(hours=settings.PORTAL_API_IDEMPOTENCY_HOURS)
    IdempotencyRecord.objects.filter(token=token, key=key, created_at__lt=cutoff).delete()
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(token=token, key=key, fingerprint=request_hash), True
    except IntegrityError:  # another request had the key: its transaction has committed
        record = IdempotencyRecord.objects.get(token=token, key=key)
    if record.fingerprint != request_hash:
        raise ApiProblem(
            422,
            f"This {HEADER} was already used for a different request (another path or body). Use a "
            "new key for a new request.",
            kind="idempotency-key-reused",
        )
    return record, False


@contextmanager
def idempotency_claim(request: HttpRequest, response: HttpResponse) -> Iterator[Claim]:
    """Claim the request's Idempotency-Key (400 if malformed) for the work done inside the block."""
    key = _key(request)
    if key is None:
        yield Claim(response)
        return
    refusal: Exception | None = None
    with transaction.atomic():
        record, first = _claim(request.auth, key, fingerprint(request))
        try:
            yield Claim(response, record, replay=not first)
        except Exception as error:
            if not first or status_for(error) >= 500:
                raise  # a failure: roll it all back, the key with it, so a retry starts afresh
            # A refusal: the service has undone its own work (its atomic block), and what it kept on
            # purpose, such as the audit of a refused placement, is committed as without a key.
            record.delete()
            refusal = error
        else:
            if first and not record.target_id:
                raise RuntimeError(f"{request.path}: the endpoint did not remember what it created")
    if refusal is not None:
        raise refusal
