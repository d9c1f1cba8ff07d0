"""`make run` on another port: every process links to that port, and the banners say so."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from portal.core.management.commands import devrun
from portal.core.management.commands.seed_demo import Command as SeedDemo

REPO_ROOT = Path(__file__).resolve().parents[2]


class _Exited:
    """A child that has already exited: devrun stops at once, having started all three."""

    pid = 0

    def __init__(self) -> None:
        self.stdout = io.BytesIO(b"")

    def poll(self) -> int:
        return 0

    def wait(self) -> int:
        return 0


@pytest.fixture
def started(monkeypatch):
    children: list[tuple[list[str], dict]] = []

    def popen(argv, *, env, **kwargs):
        children.append((argv, env))
        return _Exited()

    monkeypatch.setattr(devrun.subprocess, "Popen", popen)
    monkeypatch.setattr(devrun.Command, "_signal", staticmethod(lambda *a, **k: None))
    monkeypatch.delenv("PORTAL_BASE_URL", raising=False)
    return children


def _devrun(*args: str) -> str:
    out = io.StringIO()
    with pytest.raises(CommandError, match="exited unexpectedly"):
        call_command("devrun", *args, stdout=out)
    return out.getvalue()


def test_web_worker_and_beat_all_link_to_the_port_served(started, monkeypatch, capsys):
    monkeypatch.setenv("PORT", "8300")

    _devrun()

    web = started[0][0]
    assert web[web.index("--port") + 1] == "8300"  # uvicorn's port
    assert web[web.index("--host") + 1] == "127.0.0.1"
    assert [env["PORTAL_BASE_URL"] for _, env in started] == ["http://127.0.0.1:8300"] * 3
    banner = capsys.readouterr().out
    assert "Portal   http://127.0.0.1:8300" in banner
    assert "links in e-mail go to http://127.0.0.1:8300" in banner
    assert "8000" not in banner


def test_the_port_option_wins_over_port_in_the_environment(started, monkeypatch):
    monkeypatch.setenv("PORT", "8300")

    _devrun("--port", "8400")

    assert {env["PORTAL_BASE_URL"] for _, env in started} == {"http://127.0.0.1:8400"}


def test_an_explicit_base_url_is_kept(started, monkeypatch):
    monkeypatch.setenv("PORTAL_BASE_URL", "https://portal.example.test/")  # a proxy in front

    _devrun("--port", "8400")

    assert {env["PORTAL_BASE_URL"] for _, env in started} == {"https://portal.example.test"}


def test_settings_default_base_url_follows_port(tmp_path):
    """`PORT=8300 make run` runs seed_demo and devrun with PORT set: the settings agree."""
    env = {k: v for k, v in os.environ.items() if k not in {"PORTAL_BASE_URL", "DATABASE_URL", "REDIS_URL"}}
    env |= {"PORT": "8300", "PORTAL_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "portal.settings"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.PORTAL_BASE_URL)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert done.stdout.strip() == "http://127.0.0.1:8300", done.stderr


def test_demo_banner_prints_the_base_url(settings):
    settings.PORTAL_BASE_URL = "http://127.0.0.1:8300"
    command = SeedDemo(stdout=io.StringIO())

    command._print_summary()

    banner = command.stdout._out.getvalue()
    assert "Portal     http://127.0.0.1:8300 " in banner
    assert "Admin      http://127.0.0.1:8300/admin/" in banner
    assert "8000" not in banner
