"""What the backend interface says about consoles (base.py declares the capabilities).

Two kinds, declared per zone:

- `Capability.SERIAL_CONSOLE`: the portal relays the server's serial console itself.
  `open_serial_console(backend_id)` returns a `ConsoleStream`, a byte pipe with blocking calls
  that the websocket consumer makes from worker threads: `read(timeout)` answers what the server
  printed (b"" when nothing came within `timeout`) and raises `ConsoleClosed` once the far end has
  gone (the server stopped, the host closed it); `write(data)` sends keystrokes; `close()` ends it
  and is safe to call twice and from another thread.
- `Capability.GRAPHICAL_CONSOLE`, one of two ways, as the backend's `RELAYS_GRAPHICAL_CONSOLE`
  says: the cloud serves a console of its own (OpenStack's noVNC) and `remote_console(backend_id)`
  hands out its short-lived address, which the portal links to; or the portal relays the server's
  display itself (libvirt's VNC): `open_graphical_console(backend_id)` returns a `ConsoleStream` of
  RFB bytes, which the portal's websocket hands to the noVNC of its own page.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


class ConsoleClosed(Exception):
    """The console's far end has gone; the message says why, in the customer's words."""


class ConsoleStream(ABC):
    @abstractmethod
    def read(self, timeout: float) -> bytes: ...

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


@dataclass(frozen=True)
class RemoteConsole:
    url: str  # opened by the customer's browser; valid for a short while only, as the cloud decides
    protocol: str  # "vnc", "spice", "serial" (a websocket), as the cloud names it
    kind: str = ""  # the cloud's own name of the console type, e.g. "novnc"
