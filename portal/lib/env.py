"""Typed reading of configuration from the environment.

Every setting that differs between a laptop and production comes through here, so a typo or a
malformed value fails at start-up with a message naming the variable, not later at run time.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


class ConfigError(RuntimeError):
    pass


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number; got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_url(url: str, *, sqlite_default: Path) -> dict:
    """Django DATABASES["default"] from a URL; an empty URL means the embedded SQLite file."""
    if not url:
        return _sqlite(sqlite_default)
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:////abs/path.db or sqlite:///relative.db
        return _sqlite(Path(unquote(parts.path[1:] if parts.path.startswith("//") else parts.path)))
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "portal",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ConfigError(f"DATABASE_URL scheme {parts.scheme!r} is not supported (use postgres:// or sqlite://)")


def _sqlite(path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # A file, not memory, so that a Celery worker process started by a test sees the test data.
        "TEST": {"NAME": path.with_name(f"test-{path.name}")},
        "OPTIONS": {
            # WAL lets the web server and the worker read while the other writes; IMMEDIATE makes
            # a writing transaction take the lock up front instead of failing half-way.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
            "transaction_mode": "IMMEDIATE",
        },
    }


def mailer_from_url(url: str) -> dict:
    """One MAILERS entry from EMAIL_URL: smtp://user:pass@host:587?tls=1, smtps://…, console://,
    file:///path."""
    if not url or url.startswith("console:"):
        return {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
    parts = urlsplit(url)
    if parts.scheme == "locmem":
        return {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    if parts.scheme == "file":  # file:///var/spool/portal-mail: one file per connection, for inspection
        return {"BACKEND": "django.core.mail.backends.filebased.EmailBackend", "OPTIONS": {"file_path": parts.path}}
    if parts.scheme in {"smtp", "smtps", "submission"}:
        query = {key: values[-1].lower() in _TRUE for key, values in parse_qs(parts.query).items()}
        default_port = {"smtps": 465, "submission": 587}.get(parts.scheme, 25)
        return {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": parts.hostname or "localhost",
                "port": parts.port or default_port,
                "username": unquote(parts.username or ""),
                "password": unquote(parts.password or ""),
                "use_ssl": parts.scheme == "smtps" or query.get("ssl", False),
                "use_tls": parts.scheme == "submission" or query.get("tls", False),
                "timeout": 10,
            },
        }
    raise ConfigError(
        f"EMAIL_URL scheme {parts.scheme!r} is not supported (use smtp://, smtps://, console://, file://)"
    )
