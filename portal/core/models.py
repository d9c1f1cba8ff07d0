from __future__ import annotations

from django.db import models


class OutboxMessage(models.Model):
    """An e-mail to send, written in the transaction of the change it is about (so a rolled-back
    change sends nothing and a committed one loses nothing), sent right after the commit and, if
    that fails (the mail server down, the process killed), again later by `outbox_send_due`."""

    created_at = models.DateTimeField(auto_now_add=True)
    subject = models.CharField(max_length=998)
    body = models.TextField()
    html = models.TextField(blank=True)
    from_email = models.CharField(max_length=254)
    to = models.JSONField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(help_text="When a delivery may be tried (again).")
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=models.Q(sent_at__isnull=True), name="outbox_unsent_due"
            )
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {', '.join(self.to)}"
