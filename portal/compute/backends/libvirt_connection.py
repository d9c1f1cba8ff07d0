"""How the libvirt backend reaches a host, in one of two ways (docs/backends/libvirt.md):

- through a libvirt daemon (`qemu:///system`, `qemu+ssh://…`): one connection per host and process,
  kept open and reopened when it breaks (`HostConnections`);
- libvirt's embedded QEMU driver (`qemu:///embed?root=DIR`, no daemon, for development and tests).
  The driver lives inside the process that opens it, and only one process at a time may hold a
  root, until that process exits. So each call runs in a short helper process
  (`libvirt_host.py` run as a script: no Django, ~0.1 s) that waits for a lock, opens the root,
  does its work and exits. QEMU outlives it, and the next helper re-attaches to the running VMs
  (`run_in_helper`).

Either way a call is one `libvirt_host.HOST_OPS` entry, and a failure is a `HostError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from portal.compute.backends import libvirt_console, libvirt_host
from portal.compute.backends.libvirt_host import HOST_OPS, HostError, embedded_root, host_error, open_host

try:
    import libvirt
except ImportError:  # reported as a clear error when a zone uses this backend
    libvirt = None

HELPER_TIMEOUT_SECONDS = 120


def host_key(uri: str) -> str:
    """The host part of a backend id: the URI's host name (`localhost` for local URIs)."""
    return urlsplit(uri).hostname or "localhost"


class HostConnections:
    """One backend's ways to its hosts, in this process."""

    def __init__(self) -> None:
        self._connections: dict[str, object] = {}
        self._connections_pid = os.getpid()
        self._lock = threading.Lock()

    def run(self, uri: str, op: str, args: dict, *, run_as: str | None = None):
        """Run one host operation on the host at `uri`; raises HostError."""
        if embedded_root(uri):
            return run_in_helper(uri, op, args, run_as=run_as)
        return self._in_process(uri, op, args)

    def open_console(self, uri: str, domain_uuid: str, *, run_as: str | None = None):
        """The domain's serial console: `read(timeout)`, `write(data)`, `close()`, raising
        libvirt_console.ConsoleEnded once it has ended; opening raises HostError."""
        if embedded_root(uri):
            return HelperConsole(uri, domain_uuid, run_as=run_as)
        conn = self.connection(uri)
        try:
            return libvirt_console.DomainConsole(conn, domain_uuid)
        except libvirt.libvirtError as error:
            raise host_error(error, uri, "console") from None

    def connection(self, uri: str):
        if libvirt is None:
            raise HostError("transient", "The cloud is not reachable.", "libvirt-python is not installed")
        with self._lock:
            if self._connections_pid != os.getpid():  # forked (Celery prefork): the parent's are not ours
                self._connections, self._connections_pid = {}, os.getpid()
            conn = self._connections.get(uri)
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except libvirt.libvirtError:
                    pass
                self._connections.pop(uri, None)
            conn = open_host(uri)
            if urlsplit(uri).hostname:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.setKeepAlive(5, 3)
            self._connections[uri] = conn
            return conn

    def _in_process(self, uri: str, op: str, args: dict):
        conn = self.connection(uri)
        try:
            return HOST_OPS[op](conn, **args)
        except libvirt.libvirtError as error:
            problem = host_error(error, uri, op)
            if problem.kind == "transient":
                with self._lock:
                    self._connections.pop(uri, None)  # reopen next time
            raise problem from None


def _helper_env(root: Path) -> dict:
    home = str(root / "home")
    return os.environ | {
        name: home
        for name in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR", "XDG_DATA_HOME")
    }


class HelperConsole:
    """An embedded-driver domain's console, held by a helper process of its own
    (`libvirt_console.py` run as a script) for as long as the session lasts: raw bytes on its
    stdin and stdout. Meanwhile the root is locked, so the root's other calls wait (up to
    LOCK_WAIT_SECONDS) until the console is closed: the embedded driver is for development."""

    def __init__(self, uri: str, domain_uuid: str, *, run_as: str | None) -> None:
        root = Path(embedded_root(uri))
        prepare_embedded_root(root, run_as)
        self._process = subprocess.Popen(  # noqa: S603 — our own file, this interpreter
            [sys.executable, "-P", libvirt_console.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_helper_env(root),
        )
        request = {"uri": uri, "domain_uuid": domain_uuid, "run_as": run_as}
        self._process.stdin.write((json.dumps(request) + "\n").encode())
        self._process.stdin.flush()
        self._out = self._process.stdout.fileno()
        answer = b""
        deadline = time.monotonic() + HELPER_TIMEOUT_SECONDS
        while not answer.endswith(b"\n"):  # byte by byte: the console's own bytes follow the line
            left = deadline - time.monotonic()
            ready = left > 0 and select.select([self._out], [], [], left)[0]
            chunk = os.read(self._out, 1) if ready else b""
            if not chunk:
                self.close()
                raise HostError(
                    "transient", "The cloud's host did not answer; we will retry.", f"{uri}: console helper"
                )
            answer += chunk
        opened = json.loads(answer)
        if "error" in opened:
            self.close()
            raise HostError(**opened["error"])

    def read(self, timeout: float) -> bytes:
        if self._process.stdout.closed:
            raise libvirt_console.ConsoleEnded("Closed.")
        if not select.select([self._out], [], [], timeout)[0]:
            return b""
        data = os.read(self._out, 65536)
        if not data:
            raise libvirt_console.ConsoleEnded("The server's console closed (it stopped or restarted).")
        return data

    def write(self, data: bytes) -> None:
        if self._process.stdin.closed:
            raise libvirt_console.ConsoleEnded("Closed.")
        try:
            self._process.stdin.write(data)
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise libvirt_console.ConsoleEnded(
                "The server's console closed (it stopped or restarted)."
            ) from None

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._process.stdin.close()  # the helper closes the console and exits
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        with contextlib.suppress(OSError, ValueError):
            self._process.stdout.close()


def run_in_helper(uri: str, op: str, args: dict, *, run_as: str | None = None):
    """Run one host operation on an embedded-driver root, in a helper process of its own."""
    root = Path(embedded_root(uri))
    prepare_embedded_root(root, run_as)
    env = _helper_env(root)
    request = {"uri": uri, "op": op, "args": args, "run_as": run_as}
    try:
        result = subprocess.run(  # noqa: S603 — our own file, this interpreter
            [sys.executable, "-P", libvirt_host.__file__],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=HELPER_TIMEOUT_SECONDS,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise HostError(
            "transient", "The cloud's host did not answer; we will retry.", f"{uri}: {op} timed out"
        ) from None
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        raise HostError(
            "transient",
            "The cloud's host did not answer as expected; we will retry.",
            f"{uri}: {op} helper exited {result.returncode}: {result.stderr.strip()[-1500:]}",
        ) from None
    if "error" in answer:
        error = answer["error"]
        detail = error["detail"]
        if "Failed to parse user 'libvirt-qemu'" in detail:
            detail += (
                " (as root, the embedded driver needs a libvirt-qemu user: create it with `useradd --system"
                " --user-group --no-create-home libvirt-qemu`, or set embed_user to run it as another user)"
            )
        raise HostError(error["kind"], error["message"], detail)
    return answer["result"]


def prepare_embedded_root(root: Path, run_as: str | None) -> None:
    """The root directory, owned by whoever runs the driver, and its qemu.conf: no virtlogd
    (there is no daemon), and QEMU as root when the driver runs as root."""
    if (root / "etc" / "qemu.conf").exists() and (root / "portal-embed.lock").exists():
        return
    root.mkdir(parents=True, exist_ok=True)
    (root / "home").mkdir(exist_ok=True)
    (root / "etc").mkdir(exist_ok=True)
    config = root / "etc" / "qemu.conf"
    if not config.exists():
        lines = [
            "# Written by the portal's libvirt backend for the embedded driver.",
            'stdio_handler = "file"',
        ]
        if os.geteuid() == 0 and not run_as:
            lines += ['user = "root"', 'group = "root"']
        config.write_text("\n".join(lines) + "\n")
    (root / "portal-embed.lock").touch()
    if run_as and os.geteuid() == 0:
        account = pwd.getpwnam(run_as)
        for path in (root, root / "home", root / "etc", root / "portal-embed.lock"):
            os.chown(path, account.pw_uid, account.pw_gid)
