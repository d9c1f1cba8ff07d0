"""A libvirt domain's graphical console: the VNC display its definition asks for
(libvirt_xml.domain_xml: `<graphics type='vnc' listen='127.0.0.1' autoport='yes'/>`), for the
backend's `open_graphical_console` (docs/backends/libvirt.md).

The display listens on the host's loopback only, on the port libvirt picked when the domain
started (read from its live XML: `libvirt_host.op_display`). The portal reaches it:

- on the portal's own machine (`qemu:///system`, the embedded driver): a TCP connection to it;
- on a `qemu+ssh://` host: `ssh -W 127.0.0.1:<port>`, the same SSH access libvirt itself uses,
  so the display is never exposed on the host's network.

Other transports (`qemu+tcp`, `qemu+tls`) have no way to the host's loopback: those zones do not
offer it. The stream is raw RFB bytes both ways; the portal's websocket relays them to noVNC.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
from urllib.parse import parse_qs, urlsplit

from portal.compute.backends.base import Capability, Rejected, Transient, not_available
from portal.compute.backends.console import ConsoleClosed, ConsoleStream

CONNECT_TIMEOUT_SECONDS = 10
CLOSED = "The server's display closed (it stopped or restarted)."
NO_DISPLAY = (
    "This server has no graphical display: it was created before the graphical console existed. "
    "Use its serial console."
)


def display_reachable(uri: str) -> bool:
    """Whether the portal can reach a display on the loopback of the host at `uri`."""
    parts = urlsplit(uri)
    transport = parts.scheme.partition("+")[2]
    return (not parts.hostname and transport in ("", "unix")) or transport == "ssh"


def ssh_command(uri: str, host: str, port: int) -> list[str]:
    """`ssh -W` to the display's port on the host, as libvirt's own qemu+ssh transport logs in."""
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    command = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_SECONDS}"]
    if parts.port:
        command += ["-p", str(parts.port)]
    if parts.username:
        command += ["-l", parts.username]
    if query.get("keyfile"):
        command += ["-i", query["keyfile"][0]]
    if query.get("no_verify", ["0"])[0] == "1":
        command += ["-o", "StrictHostKeyChecking=no"]
    return [*command, "-W", f"{host}:{port}", "--", parts.hostname]


class SocketDisplay(ConsoleStream):
    """The display's TCP connection on the portal's own machine."""

    def __init__(self, host: str, port: int) -> None:
        self._socket = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS)
        self._socket.settimeout(None)
        self._closed = False

    def read(self, timeout: float) -> bytes:
        if self._closed:
            raise ConsoleClosed("Closed.")
        try:
            if not select.select([self._socket], [], [], timeout)[0]:
                return b""
            data = self._socket.recv(65536)
        except (OSError, ValueError):
            raise ConsoleClosed(CLOSED) from None
        if not data:
            raise ConsoleClosed(CLOSED)
        return data

    def write(self, data: bytes) -> None:
        try:
            self._socket.sendall(data)
        except (OSError, ValueError):
            raise ConsoleClosed(CLOSED) from None

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()


class SshDisplay(ConsoleStream):
    """The display through `ssh -W`: its stdin and stdout are the display's bytes."""

    def __init__(self, command: list[str]) -> None:
        self._process = subprocess.Popen(  # noqa: S603 — ssh with arguments of our own
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._out = self._process.stdout.fileno()

    def read(self, timeout: float) -> bytes:
        if self._process.stdout.closed:
            raise ConsoleClosed("Closed.")
        if not select.select([self._out], [], [], timeout)[0]:
            return b""
        data = os.read(self._out, 65536)
        if not data:
            raise ConsoleClosed(CLOSED)
        return data

    def write(self, data: bytes) -> None:
        try:
            self._process.stdin.write(data)
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise ConsoleClosed(CLOSED) from None

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        with contextlib.suppress(OSError, ValueError):
            self._process.stdout.close()


class LibvirtDisplay:
    """Mixed into LibvirtBackend (it provides `_config`, `_locate`, `_host`)."""

    RELAYS_GRAPHICAL_CONSOLE = True

    def _display_capabilities(self, zone: str) -> set[Capability]:
        """The graphical console, unless the zone's settings say `"graphical_console": false` or a
        host of the zone can't be reached on its loopback."""
        try:
            config = self._config(zone)
        except Transient:
            return set()
        if not config.get("graphical_console", True):
            return set()
        return {Capability.GRAPHICAL_CONSOLE} if all(map(display_reachable, config["hosts"])) else set()

    def open_graphical_console(self, backend_id: str) -> ConsoleStream:
        """The running domain's VNC display as a byte stream (RFB from its first byte)."""
        zone = self._parse_id(backend_id)[0]
        if Capability.GRAPHICAL_CONSOLE not in self._display_capabilities(zone):
            raise not_available(Capability.GRAPHICAL_CONSOLE, zone)
        config, uri, domain_uuid, summary = self._locate(backend_id)
        if summary["state"] not in ("running", "rebooting", "rescue"):
            raise Rejected(f"The server is {summary['state']}: its display is there while it runs.")
        display = self._host(config, uri, "display", domain_uuid=domain_uuid)
        if display is None:
            raise Rejected(NO_DISPLAY, f"domain {domain_uuid} on {uri} has no VNC display")
        host, port = display["host"], int(display["port"])
        try:
            if urlsplit(uri).hostname:
                return SshDisplay(ssh_command(uri, host, port))
            return SocketDisplay(host, port)
        except OSError as error:
            raise Transient(
                "The server's display did not answer. Please try again in a moment.",
                f"{uri}: VNC display {host}:{port} of {domain_uuid}: {error}",
            ) from None
