"""Development mail printed in the terminal: the links in it are the real ones, byte for byte."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse
from django.utils.module_loading import import_string

from portal.accounts.models import User
from tests.factories import PASSWORD

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIRM_LINK = re.compile(r"https?://\S+/accounts/confirm-email/\S+/")


def _mail_backend(tmp_path, **env: str) -> str:
    """MAILERS' default backend as the settings make it for this environment (a fresh process)."""
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "EMAIL_URL"}}
    environment |= {"PORTAL_VAR_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT), **env}
    environment["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    code = "from django.conf import settings; print(settings.MAILERS['default']['BACKEND'])"
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


DEVELOPMENT_BACKEND = "portal.core.mail_console.EmailBackend"


def _printed(message) -> str:
    stream = io.StringIO()
    import_string(DEVELOPMENT_BACKEND)(stream=stream).send_messages([message])
    return stream.getvalue()


def test_development_runs_print_mail_with_the_portals_console_backend(tmp_path):
    assert _mail_backend(tmp_path, DEBUG="1") == DEVELOPMENT_BACKEND


def test_production_keeps_djangos_refusal_of_a_console_backend(tmp_path):
    """Without EMAIL_URL and DEBUG off, Django's deploy check must still see a console backend."""
    backend = _mail_backend(tmp_path, DEBUG="0", SECRET_KEY="x" * 60)
    assert backend == "django.core.mail.backends.console.EmailBackend"


@pytest.mark.django_db
def test_the_printed_confirmation_link_is_the_real_one(client, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("account_signup"),
            {"email": "grace.hopper-long-address@example.com", "password1": PASSWORD, "password2": PASSWORD},
        )
    mail = mailoutbox[-1]
    real = CONFIRM_LINK.search(mail.body).group(0)

    printed = _printed(mail)

    assert "=3D" not in printed
    link = CONFIRM_LINK.search(printed).group(0)
    assert link.encode() == real.encode()
    assert f"To: {mail.to[0]}" in printed and f"Subject: {mail.subject}" in printed
    # ... and a person copying it from the terminal gets the confirmation page.
    client.post(link)
    assert User.objects.get(email=mail.to[0]).has_verified_email


def test_long_lines_and_equals_signs_are_printed_as_written():
    url = "http://127.0.0.1:8300/o/acme/p/web-shop/usage/?month=2026-11&project=web-shop&x=" + "a" * 120
    message = EmailMultiAlternatives("Usage", f"See {url}\nÜnïcode stays too.\n", to=["a@example.com"])
    message.attach_alternative(f"<a href='{url}'>usage</a>", "text/html")

    printed = _printed(message)

    assert f"See {url}\n" in printed
    assert "Ünïcode stays too." in printed
    assert "Also: text/html (not shown)" in printed
