"""Run the whole portal for development in one terminal: web server, Celery worker and beat.

The web server is uvicorn on the ASGI application (portal.asgi: pages and the serial console's
websockets), reloading when the code or a template changes, as in production but for the reload.

Each child's output is shown line by line behind a coloured tag. Ctrl-C (or SIGTERM) stops all
three; if one of them dies on its own the others are stopped too and the command fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL

COLOURS = {"web": "36", "worker": "33", "beat": "35"}  # cyan, yellow, magenta


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    reader: threading.Thread | None = field(default=None, repr=False)


def _default_port() -> int:
    raw = os.environ.get("PORT", "").strip()
    if not raw:
        return 8000
    try:
        return int(raw)
    except ValueError:
        raise CommandError(f"PORT must be a port number; got {raw!r}") from None


def base_url_for(port: int, environ: dict[str, str]) -> str:
    """The address links in e-mail point to: PORTAL_BASE_URL if set (a proxy in front), else this server."""
    return environ.get("PORTAL_BASE_URL", "").strip().rstrip("/") or f"http://127.0.0.1:{port}"


def web_argv(port: int) -> list[str]:
    """uvicorn serving portal.asgi on 127.0.0.1, reloaded when Python code or a template changes."""
    base = settings.BASE_DIR
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "portal.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--reload",
        "--reload-dir",
        str(base / "portal"),
        "--reload-dir",
        str(base / "templates"),
        "--reload-include",
        "*.html",
        "--no-server-header",
        "--lifespan",
        "off",  # Django has no lifespan events: without this uvicorn says so on every start
    ]


class Command(BaseCommand):
    help = "Start the web server (uvicorn), a Celery worker and Celery beat together; Ctrl-C stops all three."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port",
            type=int,
            default=None,
            help="Port for the web server on 127.0.0.1 (default: $PORT or 8000).",
        )

    def handle(self, *args, **options) -> None:
        port = options["port"] if options["port"] is not None else _default_port()
        self.colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self.output_lock = threading.Lock()
        self.stop_requested = 0  # number of SIGINT/SIGTERM received

        celery = [sys.executable, "-m", "celery", "-A", "portal"]
        beat_schedule = str(settings.CELERY_BEAT_SCHEDULE_FILENAME)
        children = [
            Child("web", web_argv(port)),
            Child("worker", [*celery, "worker", "-l", "info", "-c", "2"]),
            Child("beat", [*celery, "beat", "-l", "info", "-s", beat_schedule]),
        ]

        # Every child, the worker and beat too, links to the port served here, whatever $PORT
        # or the settings' default say.
        self.base_url = base_url_for(port, os.environ)
        self._banner(port)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        failure: str | None = None
        try:
            for child in children:
                self._start(child)
            failure = self._watch(children)
        finally:
            self._stop(children)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failure:
            raise CommandError(f"{failure}; stopped the others.", returncode=1)
        self._say("devrun", "all stopped.")

    # --- children ---------------------------------------------------------------------------

    def _start(self, child: Child) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PORTAL_BASE_URL": self.base_url}
        child.process = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
            child.argv,
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Own process group: Ctrl-C in the terminal reaches only this command, which then
            # stops the children in order; killpg also reaches their own children (reloader,
            # pool processes).
            process_group=0,
        )
        child.reader = threading.Thread(
            target=self._pump, args=(child.name, child.process.stdout), daemon=True
        )
        child.reader.start()

    def _watch(self, children: list[Child]) -> str | None:
        """Wait until a stop is requested (None) or a child exits by itself (the reason)."""
        while not self.stop_requested:
            for child in children:
                code = child.process.poll()
                if code is not None:
                    return f"{child.name} exited unexpectedly with status {code}"
            time.sleep(0.2)
        return None

    def _stop(self, children: list[Child]) -> None:
        running = [c for c in children if c.process is not None and c.process.poll() is None]
        if running:
            names = ", ".join(c.name for c in running)
            self._say("devrun", f"stopping {names} (Ctrl-C again to kill them at once) …")
        for child in running:  # the leader shuts its own children down
            self._signal(child, signal.SIGTERM, group=False)
        signals_seen = self.stop_requested
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(c.process.poll() is None for c in running):
            if time.monotonic() >= deadline or self.stop_requested > signals_seen:
                stuck = [c.name for c in running if c.process.poll() is None]
                self._say("devrun", f"killing {', '.join(stuck)}")
                break
            time.sleep(0.1)
        # Whatever is left, including grandchildren of a leader that already exited.
        for child in children:
            if child.process is not None:
                self._signal(child, signal.SIGKILL, group=True)
                child.process.wait()
        for child in children:
            if child.reader is not None:
                child.reader.join(timeout=2)

    @staticmethod
    def _signal(child: Child, sig: signal.Signals, *, group: bool) -> None:
        try:
            if group:
                os.killpg(child.process.pid, sig)
            else:
                child.process.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _on_signal(self, signum: int, frame) -> None:
        # Only count: printing here could deadlock on the output lock held by the main thread.
        self.stop_requested += 1

    # --- output -----------------------------------------------------------------------------

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self._say(name, raw.decode(errors="replace").rstrip("\r\n"))
        stream.close()

    def _tag(self, name: str) -> str:
        label = f"{name:<6}|"
        if self.colour:
            return f"\033[{COLOURS.get(name, '1')}m{label}\033[0m"
        return label

    def _say(self, name: str, line: str) -> None:
        with self.output_lock:
            sys.stdout.write(f"{self._tag(name)} {line}\n")
            sys.stdout.flush()

    def _banner(self, port: int) -> None:
        # Django 6.1 MAILERS, or the older EMAIL_BACKEND (reading it raises when MAILERS is set).
        mailer = (getattr(settings, "MAILERS", None) or {}).get("default", {})
        backend = mailer.get("BACKEND") or getattr(settings, "EMAIL_BACKEND", "")
        if backend.endswith(".console.EmailBackend") or backend == "portal.core.mail_console.EmailBackend":
            mail = "printed in this terminal (web / worker lines)"
        else:
            mail = f"sent with {backend} (EMAIL_URL)"
        url = f"http://127.0.0.1:{port}"
        lines = [
            f"{settings.SITE_NAME} — development run (web + Celery worker + Celery beat)",
            "",
            f"  Portal   {url}",
            f"  Admin    {url}/admin/",
            f"  E-mail   {mail}",
            f"           links in e-mail go to {self.base_url}",
            "  Stop     Ctrl-C stops all three",
        ]
        rule = "=" * (max(len(line) for line in lines) + 2)
        if self.colour:
            lines[2] = f"  Portal   \033[1m{url}\033[0m"
        with self.output_lock:
            sys.stdout.write("\n".join([rule, *lines, rule]) + "\n")
            sys.stdout.flush()
