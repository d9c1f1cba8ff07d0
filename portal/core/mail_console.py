"""The development mail "server": each message printed to the terminal as a person reads it.

Django's console backend prints the MIME source, where the text part is quoted-printable: a link
comes out with `=3D` for each `=` and broken by soft line breaks, and can be neither clicked nor
copied. This one prints the headers that matter and the text part as it was written.
"""

from __future__ import annotations

import sys
import threading

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

RULE = "-" * 79


class EmailBackend(BaseEmailBackend):
    def __init__(self, *, stream=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def send_messages(self, email_messages: list[EmailMessage]) -> int:
        with self._lock:
            for message in email_messages:
                self.stream.write(render(message))
                self.stream.flush()
        return len(email_messages)


def render(message: EmailMessage) -> str:
    lines = [
        f"From: {message.from_email}",
        f"To: {', '.join(message.to)}",
        *([f"Cc: {', '.join(message.cc)}"] if message.cc else []),
        f"Subject: {message.subject}",
    ]
    others = [mimetype for _, mimetype in getattr(message, "alternatives", [])]
    others += [attachment.mimetype for attachment in message.attachments if hasattr(attachment, "mimetype")]
    if others:
        lines.append(f"Also: {', '.join(others)} (not shown)")
    return "\n".join([*lines, "", message.body.rstrip("\n"), RULE, ""])
