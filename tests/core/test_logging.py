"""What a refused request leaves in the log: one line, no traceback (a 500 keeps its traceback).

Run in a child process with the portal's own logging settings, as `runserver` or gunicorn would
log, since pytest replaces the handlers of the process it runs in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

URLS = """
from django.core.exceptions import PermissionDenied
from django.urls import path

from portal.urls import urlpatterns as portal_urlpatterns


def denied(request):
    raise PermissionDenied("Your role in Acme is Viewer; this needs the Owner or Admin role.")


def broken(request):
    raise RuntimeError("a bug")


urlpatterns = [path("denied/", denied), path("broken/", broken), *portal_urlpatterns]
"""

SCRIPT = """
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="127.0.0.1", raise_request_exception=False)
print("status", client.get("/{path}/").status_code)
"""


def _request(tmp_path, path: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "denied_urls.py").write_text(URLS)
    (tmp_path / "denied_settings.py").write_text('from portal.settings import *\nROOT_URLCONF = "denied_urls"\n')
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    environment |= {
        "DJANGO_SETTINGS_MODULE": "denied_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)]),
        "PORTAL_VAR_DIR": str(tmp_path / "var"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT.format(path=path))],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_403_logs_one_line_without_traceback(tmp_path):
    done = _request(tmp_path, "denied", DEBUG="1", LOG_FORMAT="text")

    assert "status 403" in done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "WARNING django.request: Forbidden (Permission denied): /denied/" in lines[0]


def test_a_403_in_json_has_no_exception_field(tmp_path):
    done = _request(tmp_path, "denied", DEBUG="1", LOG_FORMAT="json")

    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert '"status_code": 403' in lines[0] and '"exception"' not in lines[0]


def test_a_500_keeps_its_traceback_once(tmp_path):
    done = _request(tmp_path, "broken", DEBUG="1", LOG_FORMAT="text")

    assert "status 500" in done.stdout, done.stderr
    assert done.stderr.count("Traceback (most recent call last)") == 1, done.stderr
    assert "RuntimeError: a bug" in done.stderr
