"""Serial console sessions: one row from the ticket that opens a session to its close."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def ticket_digest(ticket: str) -> str:
    """Only the ticket's SHA-256 is stored: the database never holds a ticket that would open a
    console."""
    return hashlib.sha256(ticket.encode()).hexdigest()


class ConsoleSession(models.Model):
    """Issued as a one-time ticket bound to a user and a server, valid until `expires_at`; the
    websocket that presents it first opens the session (`opened_at`, a conditional UPDATE, so a
    ticket opens one session at most); closed with the reason (`closed_at`, `close_reason`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    ticket_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(
        "compute.Instance", on_delete=models.CASCADE, related_name="console_sessions"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=200, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # The API token the ticket was asked with (None from the web page): revoking or expiring it
    # ends the session too.
    api_token = models.ForeignKey(
        "api.ApiToken", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["instance", "-created_at"])]

    def __str__(self) -> str:
        return f"console session {self.pk} of {self.instance_id}"

    @classmethod
    def delete_expired_unused(cls, keep: timedelta) -> int:
        """Delete the tickets that expired unused more than `keep` ago (a page left open without a
        click leaves one); sessions that were opened stay, as the console's audit trail."""
        deleted, _ = cls.objects.filter(opened_at__isnull=True, expires_at__lt=timezone.now() - keep).delete()
        return deleted

    @property
    def duration_seconds(self) -> int | None:
        if self.opened_at is None or self.closed_at is None:
            return None
        return round((self.closed_at - self.opened_at).total_seconds())
