"""Outgoing mail through an outbox: rendered in the request or task that causes it, written as an
`OutboxMessage` row in that transaction, and sent once it commits.

The first delivery attempt happens right after the commit in the same process (fast, and what the
tests observe). Nothing about it can fail the request whose change committed: if the mail server
refuses or is unreachable, the row stays unsent and the beat task `outbox_send_due` tries again
with backoff; if the process dies after the commit, the same task sends it later. A message is sent
at least once (a process killed between the delivery and marking it sent sends it again).
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import Truncator

from portal.core.models import OutboxMessage

log = logging.getLogger(__name__)

# Attempts at a message before it is given up (and left in admin, unsent, with its last error).
MAX_ATTEMPTS = 12
# A claimed delivery that has not finished after this is free to be tried again (a killed process).
CLAIM_SECONDS = 120
# Mail clients cut long subjects where they like; names people typed (up to 80 characters each)
# could push the part that says what happened out of sight. Templates shorten the names, and
# whatever is still longer ends with an ellipsis here.
SUBJECT_MAX_LENGTH = 120


def mail_after_commit(*, template: str, to: list[str], context: dict) -> None:
    """Render `<template>_subject.txt`, `.txt` and `.html` now; send once the transaction commits."""
    context = {"site_name": settings.SITE_NAME, **context}
    subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
    subject = Truncator(subject).chars(SUBJECT_MAX_LENGTH)
    message = EmailMultiAlternatives(subject, render_to_string(f"{template}.txt", context), to=to)
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    send_after_commit(message)


def send_after_commit(message: EmailMessage) -> None:
    html = next(
        (content for content, mimetype in getattr(message, "alternatives", []) if mimetype == "text/html"), ""
    )
    row = OutboxMessage.objects.create(
        subject=message.subject,
        body=message.body,
        html=html,
        from_email=message.from_email,
        to=list(message.to),
        next_attempt_at=timezone.now(),
    )
    transaction.on_commit(lambda: outbox_deliver(row.pk), robust=True)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=random.uniform(0.5, 1.0) * min(3600, 30 * 2**attempts))  # noqa: S311


def outbox_deliver(message_id: int) -> bool:
    """Send one message if it is unsent and due, claimed by a conditional UPDATE (of two processes
    trying at once, one sends). True if it was sent now. Never raises for a delivery failure."""
    now = timezone.now()
    claimed = OutboxMessage.objects.filter(
        pk=message_id, sent_at=None, next_attempt_at__lte=now, attempts__lt=MAX_ATTEMPTS
    ).update(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
    if not claimed:
        return False
    row = OutboxMessage.objects.get(pk=message_id)
    message = EmailMultiAlternatives(row.subject, row.body, row.from_email, row.to)
    if row.html:
        message.attach_alternative(row.html, "text/html")
    try:
        message.send()
    except Exception as error:  # any delivery failure: try again later, the request is not failed
        attempts = row.attempts + 1
        OutboxMessage.objects.filter(pk=row.pk).update(
            attempts=attempts,
            next_attempt_at=now + _backoff(attempts),
            last_error=f"{type(error).__name__}: {error}",
        )
        log.warning(
            "mail delivery failed; it is tried again later", extra={"to": ",".join(row.to)}, exc_info=True
        )
        return False
    OutboxMessage.objects.filter(pk=row.pk).update(
        sent_at=timezone.now(), attempts=row.attempts + 1, last_error=""
    )
    return True


def outbox_send_due(limit: int = 200) -> int:
    """Send the messages whose delivery is due (failed before, or never tried: a process died
    after the commit). How many were sent."""
    due = OutboxMessage.objects.filter(
        sent_at=None, next_attempt_at__lte=timezone.now(), attempts__lt=MAX_ATTEMPTS
    ).order_by("next_attempt_at")
    return sum(outbox_deliver(pk) for pk in due.values_list("pk", flat=True)[:limit])
