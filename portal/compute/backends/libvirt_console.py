"""A libvirt domain's serial console, for the backend's `open_serial_console`.

`DomainConsole` opens it with virDomainOpenConsole through a non-blocking virStream, on a host
connection the backend keeps (a libvirt daemon). For the embedded driver, whose root only one
process may hold, this file is also the console's helper process (`python -P libvirt_console.py`,
see `libvirt_connection.open_console_helper`): it opens the root, holds the console for as long as
the session lasts and relays raw bytes on its stdin and stdout. Like libvirt_host.py it must not
import Django or the portal.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time

try:
    import libvirt
except ImportError:  # reported as a clear error when a zone uses this backend
    libvirt = None

if __package__:
    from portal.compute.backends import libvirt_host as host
else:  # the helper process: -P keeps this directory off sys.path (libvirt.py would shadow libvirt)
    import importlib.util

    _spec = importlib.util.spec_from_file_location(
        "libvirt_host", os.path.join(os.path.dirname(os.path.abspath(__file__)), "libvirt_host.py")
    )
    host = importlib.util.module_from_spec(_spec)
    sys.modules["libvirt_host"] = host  # before running it: it hands itself to the disk operations
    _spec.loader.exec_module(host)


class ConsoleEnded(Exception):
    """The domain's console stream has ended; the message says why, for the customer."""


class DomainConsole:
    """The domain's serial console (virDomainOpenConsole on its first serial device) through a
    non-blocking virStream. libvirt's event loop (`ensure_event_loop`, a thread) calls `_event`
    when the guest has printed something; `read` hands it out, `write` sends keystrokes.
    VIR_DOMAIN_CONSOLE_FORCE takes the console over from a session left open elsewhere."""

    EVENTS_END = ("VIR_STREAM_EVENT_ERROR", "VIR_STREAM_EVENT_HANGUP")

    def __init__(self, conn, domain_uuid: str) -> None:
        host.ensure_event_loop()
        domain = host.domain(conn, domain_uuid)
        if not domain.isActive():
            raise host.HostError(
                "rejected",
                "The server is not running: its console answers while it runs.",
                f"{domain_uuid} is off",
            )
        self._conn = conn
        self._buffer = bytearray()
        self._ended = ""
        self._ready = threading.Condition()
        self._stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        domain.openConsole(None, self._stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        events = libvirt.VIR_STREAM_EVENT_READABLE
        for name in self.EVENTS_END:
            events |= getattr(libvirt, name)
        self._stream.eventAddCallback(events, self._event, None)

    def _event(self, stream, events: int, _opaque) -> None:
        if events & libvirt.VIR_STREAM_EVENT_READABLE:
            while True:
                try:
                    data = stream.recv(65536)
                except libvirt.libvirtError:
                    self._end("The server's console connection broke.")
                    return
                if data == -2:  # nothing more for now
                    break
                if not data:
                    self._end("The server's console closed (it stopped or restarted).")
                    return
                with self._ready:
                    self._buffer += data
                    self._ready.notify_all()
        if any(events & getattr(libvirt, name) for name in self.EVENTS_END):
            self._end("The server's console closed (it stopped or restarted).")

    def _end(self, reason: str) -> None:
        with self._ready:
            if not self._ended:
                self._ended = reason
                with contextlib.suppress(libvirt.libvirtError):
                    self._stream.eventRemoveCallback()
            self._ready.notify_all()

    def read(self, timeout: float) -> bytes:
        with self._ready:
            self._ready.wait_for(lambda: self._buffer or self._ended, timeout)
            if self._buffer:
                data, self._buffer = bytes(self._buffer), bytearray()
                return data
            if self._ended:
                raise ConsoleEnded(self._ended)
            return b""

    def write(self, data: bytes) -> None:
        if self._ended:
            raise ConsoleEnded(self._ended)
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view:
            try:
                sent = self._stream.send(bytes(view))
            except libvirt.libvirtError:
                self._end("The server's console connection broke.")
                raise ConsoleEnded(self._ended) from None
            if sent == -2:  # the line is busy: a serial port takes its time
                if time.monotonic() > deadline:
                    raise ConsoleEnded("The server's console stopped taking input.")
                time.sleep(0.01)
                continue
            view = view[sent:]

    def close(self) -> None:
        self._end("Closed.")
        with contextlib.suppress(libvirt.libvirtError):
            self._stream.abort()


def _console_main() -> None:
    """Run as a script: one JSON line in (uri, domain), one JSON line out (opened, or
    the error), then raw bytes: stdin to the guest's serial console, the console to stdout, until
    either ends. The root stays locked meanwhile (the embedded driver holds the console)."""
    request = json.loads(sys.stdin.buffer.readline())
    try:
        conn = host.embedded_connection(request)
        try:
            console = DomainConsole(conn, request["domain_uuid"])
        except libvirt.libvirtError as error:
            raise host.host_error(error, request["uri"], "console") from None
    except host.HostError as error:
        os.write(1, (json.dumps({"error": error.as_dict()}) + "\n").encode())
        os._exit(0)
    os.write(1, b'{"opened": true}\n')

    def keys() -> None:
        while True:
            data = os.read(0, 4096)
            if not data:  # the portal closed the session
                console.close()
                return
            try:
                console.write(data)
            except ConsoleEnded:
                return

    threading.Thread(target=keys, daemon=True).start()
    while True:
        try:
            data = console.read(0.5)
        except ConsoleEnded:
            break
        if data:
            os.write(1, data)
    os._exit(0)


if __name__ == "__main__":
    _console_main()
