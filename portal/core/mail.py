from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string


def mail_after_commit(*, template: str, to: list[str], context: dict) -> None:
    """Render `<template>_subject.txt`, `.txt` and `.html` now; send once the transaction commits.

    A rolled-back change never produces mail, and the SMTP round trip never holds a row lock.
    """
    context = {"site_name": settings.SITE_NAME, **context}
    subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
    message = EmailMultiAlternatives(subject, render_to_string(f"{template}.txt", context), to=to)
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    transaction.on_commit(message.send)
