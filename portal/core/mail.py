"""Outgoing mail: rendered in the request or task that causes it, sent after its transaction commits.

The first delivery attempt happens right after commit in the same process (fast, and what the
tests observe); if the mail server refuses or is unreachable, the message goes to a Celery task
that retries with backoff instead of failing the user's request or being lost.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils.text import Truncator

from portal.core.tasks import mail_deliver

log = logging.getLogger(__name__)

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
    transaction.on_commit(lambda: _deliver_or_queue(message))


def _payload(message: EmailMessage) -> dict:
    return {
        "subject": message.subject,
        "body": message.body,
        "from_email": message.from_email,
        "to": list(message.to),
        "alternatives": [[content, mimetype] for content, mimetype in getattr(message, "alternatives", [])],
    }


def _deliver_or_queue(message: EmailMessage) -> None:
    try:
        message.send()
    except Exception:  # any delivery failure: hand the message to the retrying task
        log.warning(
            "mail delivery failed; queued for retry", extra={"to": ",".join(message.to)}, exc_info=True
        )
        mail_deliver.delay(_payload(message))
