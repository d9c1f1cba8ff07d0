"""Browser-facing security headers and the production start-up checks."""

from __future__ import annotations

import os
import re
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from tests.factories import PASSWORD

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
NONCE_ATTR = re.compile(r"""\bnonce=["']?([^"'\s>]+)""", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"""<[^>]*\son[a-z]+\s*=\s*["']""", re.IGNORECASE)
STYLE_ATTR = re.compile(r"""<[^>]*\sstyle\s*=\s*["']""", re.IGNORECASE)


def _policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, "no Content-Security-Policy header"
    directives = {}
    for part in header.split(";"):
        tokens = part.split()
        if tokens:
            directives[tokens[0].lower()] = tokens[1:]
    return directives


def _header_nonce(response) -> str:
    nonces = [s for s in _policy(response)["script-src"] if s.startswith("'nonce-")]
    assert len(nonces) == 1, _policy(response)["script-src"]
    return nonces[0][len("'nonce-") : -1]


# --- Content-Security-Policy -----------------------------------------------------------------


@pytest.mark.django_db
def test_csp_allows_only_own_and_nonced_scripts(client):
    response = client.get("/")
    policy = _policy(response)

    assert response.status_code == 200
    assert "'self'" in policy["script-src"]
    assert _header_nonce(response)
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "unsafe-eval" not in response["Content-Security-Policy"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]


@pytest.mark.django_db
def test_htmx_script_carries_the_header_nonce(client):
    response = client.get("/")
    body = response.content.decode()

    htmx_tags = [attrs for attrs in SCRIPT_TAG.findall(body) if "htmx" in attrs]
    assert len(htmx_tags) == 1, htmx_tags
    match = NONCE_ATTR.search(htmx_tags[0])
    assert match, f"htmx <script> has no nonce: {htmx_tags[0]}"
    assert match.group(1) == _header_nonce(response)


@pytest.mark.django_db
def test_each_response_gets_a_fresh_nonce(client):
    assert _header_nonce(client.get("/")) != _header_nonce(client.get("/"))


def _pages(org, project) -> list[tuple[str, bool]]:
    """(url, needs sign-in) for the pages of the portal frame."""
    return [
        ("/", False),
        (reverse("account_login"), False),
        (reverse("account_signup"), False),
        (reverse("account_reset_password"), False),
        (reverse("tenancy:org_create"), True),
        (org.get_absolute_url(), True),
        (project.get_absolute_url(), True),
        (reverse("tenancy:members", kwargs={"org_slug": org.slug}), True),
        (reverse("tenancy:audit_log", kwargs={"org_slug": org.slug}), True),
        (reverse("tenancy:org_settings", kwargs={"org_slug": org.slug}), True),
        (reverse("profile"), True),
        (reverse("account_email"), True),
        (reverse("account_change_password"), True),
        (reverse("mfa_index"), True),
        (reverse("usersessions_list"), True),
    ]


@pytest.mark.django_db
def test_no_page_relies_on_what_the_policy_blocks(client, client_as, owner, project):
    """Under this CSP an un-nonced inline script, an onclick= or a style= attribute silently breaks."""
    signed_in = client_as(owner)
    problems = []
    for url, needs_login in _pages(project.organization, project):
        response = (signed_in if needs_login else client).get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        nonce = _header_nonce(response)
        for attrs in SCRIPT_TAG.findall(body):
            has_src = re.search(r"\bsrc\s*=", attrs, re.IGNORECASE)
            is_data = re.search(r"""type=["']?application/(ld\+)?json""", attrs, re.IGNORECASE)
            match = NONCE_ATTR.search(attrs)
            if not has_src and not is_data and (not match or match.group(1) != nonce):
                problems.append(f"{url}: inline <script{attrs}> without the nonce")
        problems += [f"{url}: inline handler {m!r}" for m in INLINE_HANDLER.findall(body)]
        problems += [f"{url}: style attribute {m!r}" for m in STYLE_ATTR.findall(body)]
    assert problems == []


# --- Other headers ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("signed_in", [False, True])
def test_pages_cannot_be_framed_or_sniffed(client, client_as, owner, signed_in):
    response = (client_as(owner) if signed_in else client).get(reverse("profile") if signed_in else "/")

    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.django_db
def test_session_cookie_is_http_only_and_same_site(client, owner):
    client.get(reverse("account_login"))
    client.post(reverse("account_login"), {"login": owner.email, "password": PASSWORD})

    session_cookie = client.cookies["sessionid"]
    assert session_cookie["httponly"]
    assert session_cookie["samesite"] == "Lax"


# --- manage.py check in production mode ------------------------------------------------------


def _random_secret(length: int = 60) -> str:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _production_env(tmp_path, **overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "EMAIL_URL"}}
    env.setdefault("PORTAL_VAR_DIR", str(tmp_path))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": _random_secret(),
            "ALLOWED_HOSTS": "portal.example.com",
            "EMAIL_URL": "smtp://mailer:s3cret@smtp.example.com:587?tls=1",
        }
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_deploy_check_is_clean_in_production_mode(tmp_path):
    result = _manage(_production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output


def test_deploy_check_flags_production_without_email_url(tmp_path):
    """Without EMAIL_URL mail falls back to the console backend: nothing would ever be delivered."""
    result = _manage(
        _production_env(tmp_path, EMAIL_URL=None), "check", "--deploy", "--fail-level", "WARNING"
    )

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    # Django 6.1 refuses a console mail backend in production: verification mail would never leave.
    assert "mail.E001" in output


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"SECRET_KEY": "short-and-weak"}, "security.W009"),
        ({"ALLOWED_HOSTS": ""}, "security.W020"),
        ({"SECURE_SSL_REDIRECT": "0"}, "security.W008"),
    ],
)
def test_deploy_check_catches_a_weakened_production_setting(tmp_path, overrides, check_id):
    result = _manage(_production_env(tmp_path, **overrides), "check", "--deploy", "--fail-level", "WARNING")

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert check_id in output


def test_production_mode_without_secret_key_refuses_to_start(tmp_path):
    result = _manage(_production_env(tmp_path, SECRET_KEY=None), "check")

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "System check identified no issues" not in result.stdout


def test_production_mode_with_blank_secret_key_refuses_to_start(tmp_path):
    result = _manage(_production_env(tmp_path, SECRET_KEY="   "), "check")

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
