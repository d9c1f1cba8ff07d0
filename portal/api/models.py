"""Personal access tokens for the public API, and the Idempotency-Keys they sent.

A token belongs to one person in one organization (optionally one project). Only a SHA-256 of the
secret is stored; the secret is shown once, when the token is created. What a token may do is the
intersection of its scope and its owner's *current* role (see portal.api.access).
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "npt_"  # noqa: S105 — a label, not a secret
# Characters of the secret shown in lists ("npt_Ab3dE6gH…"): enough to tell tokens apart, useless to an attacker.
DISPLAY_CHARS = 8


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(30)  # 40 URL-safe characters, 240 bits


class TokenScope(models.TextChoices):
    READ = "read", "Read only"
    READ_WRITE = "read_write", "Read and write"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    organization = models.ForeignKey(
        "tenancy.Organization", on_delete=models.CASCADE, related_name="api_tokens"
    )
    project = models.ForeignKey(
        "tenancy.Project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="Empty: every project of the organization.",
    )
    name = models.CharField(max_length=80)
    scope = models.CharField(max_length=16, choices=TokenScope.choices, default=TokenScope.READ)
    billing = models.BooleanField(default=False, help_text="May read usage costs and budgets.")
    display_prefix = models.CharField(max_length=16, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "user"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix}…)"

    def set_secret(self) -> str:
        """Give the token a new secret; returns it (the only time it is available)."""
        secret = new_secret()
        self.token_hash = hash_secret(secret)
        self.display_prefix = secret[: len(TOKEN_PREFIX) + DISPLAY_CHARS]
        return secret

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return not self.is_revoked and not self.is_expired

    @property
    def can_write(self) -> bool:
        return self.scope == TokenScope.READ_WRITE


class IdempotencyRecord(models.Model):
    """An Idempotency-Key a token sent with a POST that succeeded, and what that request created.

    One row per (token, key): a unique constraint lets exactly one of two concurrent requests
    with the same key insert it; the other waits for that transaction and then replays, i.e. the
    endpoint loads the target and describes it as it did the first time (portal.api.idempotency).
    """

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="idempotency_records")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    # Filled in by the same transaction that inserted the row, once the work is done: nobody else
    # ever sees them empty.
    target_type = models.ForeignKey(ContentType, null=True, on_delete=models.CASCADE, related_name="+")
    target_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "key"], name="idempotency_unique_key_per_token")
        ]

    def __str__(self) -> str:
        return f"{self.key} → {self.target_type} {self.target_id}"
