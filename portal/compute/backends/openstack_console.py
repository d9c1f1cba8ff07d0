"""An OpenStack server's consoles (console.py): the serial console the portal relays
(`open_serial_console`) and the cloud's own noVNC page it links to (`remote_console`).

Nova hands out a serial console as an address of its serial proxy (`nova-serialproxy`):
`POST /servers/{id}/remote-consoles` with `{"protocol": "serial", "type": "serial"}`
(microversion 2.6 or later) answers `ws://…/?token=…` or `wss://…`. The portal's web process opens
that websocket itself (subprotocol "binary", as the proxy, websockify, speaks it) and relays its
bytes to the customer's terminal: the customer's browser never sees the cloud's address or token.

Nova does not say whether its serial proxy is enabled (`[serial_console] enabled` in nova.conf
of the compute hosts) without asking for a console of a running server, so a zone offers it only
when its settings say so (`"serial_console": true`, docs/backends/openstack.md).

The graphical console is Nova's noVNC (`{"protocol": "vnc", "type": "novnc"}`): an http(s) address
of the cloud's noVNC proxy with a one-time token in it, which the customer's browser opens in a
new tab; the portal relays nothing. Offered where the zone's settings say `"graphical_console":
true` (`[vnc] enabled` and a `novncproxy_base_url` the customers can reach), for the same reason.
"""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from openstack import exceptions as sdk_exceptions
from openstack import utils as sdk_utils
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from portal.compute.backends.base import Capability, NotFound, Rejected, Transient, not_available
from portal.compute.backends.console import ConsoleClosed, ConsoleStream, RemoteConsole

log = logging.getLogger(__name__)

REMOTE_CONSOLES_MICROVERSION = "2.6"  # POST /servers/{id}/remote-consoles came with 2.6
NOT_RUNNING = "The server is not running: its console answers while it runs."
UNAVAILABLE = "The serial console of this server could not be opened. Please try again; if it keeps failing, contact support."
GRAPHICAL_UNAVAILABLE = (
    "The console of this server could not be opened. Please try again; if it keeps failing, contact support."
)
NO_ANSWER = "The server's console did not answer. Please try again in a moment."
CLOSED = "The server's console closed (it stopped or restarted)."
MAX_FRAME_BYTES = 1024 * 1024


def console_fault(message: str) -> str:
    """Nova's refusal of a remote console, in the customer's words (the raw text goes to detail)."""
    lowered = message.lower()
    if "not ready" in lowered or "vm_state" in lowered or "task_state" in lowered or "not running" in lowered:
        return NOT_RUNNING
    return UNAVAILABLE


class NovaSerialConsole(ConsoleStream):
    """The serial proxy's websocket as a `ConsoleStream`: binary frames both ways. One thread reads
    (the consumer's reader), others write and close: websockets' threaded client allows that."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    def read(self, timeout: float) -> bytes:
        try:
            data = self._connection.recv(timeout=timeout, decode=False)
        except TimeoutError:
            return b""
        except ConnectionClosed as closed:
            log.info("nova serial console closed: %s", closed)
            raise ConsoleClosed(CLOSED) from None
        return data

    def write(self, data: bytes) -> None:
        try:
            self._connection.send(data)
        except ConnectionClosed:
            raise ConsoleClosed(CLOSED) from None

    def close(self) -> None:
        self._connection.close()


def _ssl_context(conn) -> ssl.SSLContext:
    """TLS for a wss:// proxy as for the cloud's API: the cloud's `cacert`, or no check at all
    where clouds.yaml says `verify: false`."""
    verify, _cert = conn.config.get_requests_verify_args()
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


@dataclass(frozen=True)
class ConsoleKind:
    capability: Capability
    protocol: str  # Nova's remote_console protocol and type
    type: str
    schemes: tuple[str, ...]  # what the address Nova answers must be
    setting: str  # the zone setting that offers it, and nova.conf's section for it
    section: str
    unavailable: str


CONSOLE_KINDS = {
    Capability.SERIAL_CONSOLE: ConsoleKind(
        Capability.SERIAL_CONSOLE,
        "serial",
        "serial",
        ("ws", "wss"),
        "serial_console",
        "[serial_console]",
        UNAVAILABLE,
    ),
    Capability.GRAPHICAL_CONSOLE: ConsoleKind(
        Capability.GRAPHICAL_CONSOLE,
        "vnc",
        "novnc",
        ("http", "https"),
        "graphical_console",
        "[vnc]",
        GRAPHICAL_UNAVAILABLE,
    ),
}


def remote_console_url(backend, conn, zone: str, server_id: str, kind: ConsoleKind) -> str:
    """Ask Nova for one of the server's remote consoles: the proxy's address with a fresh token."""
    refused = not_available(kind.capability, zone).user_message
    with backend._cloud(f"{kind.protocol} console", conn, server_id, fault=console_fault):
        if not sdk_utils.supports_microversion(conn.compute, REMOTE_CONSOLES_MICROVERSION):
            raise Rejected(
                refused,
                f"zone {zone}: Nova does not offer microversion {REMOTE_CONSOLES_MICROVERSION} "
                f"(remote consoles); unset {kind.setting} in the zone's settings",
            )
        try:
            console = conn.compute.create_server_remote_console(
                server_id, protocol=kind.protocol, type=kind.type
            )
        except sdk_exceptions.BadRequestException as error:
            text = str(getattr(error, "details", "") or error)
            if "unavailable console type" in text.lower():  # [serial_console] / [vnc] enabled = False
                raise Rejected(
                    refused,
                    f"zone {zone}: Nova refused a {kind.type} console ({text}): enable {kind.section} in "
                    f"nova.conf, or unset {kind.setting} in the zone's settings",
                ) from None
            raise
    url = str(console.url or "")
    if urlsplit(url).scheme not in kind.schemes:
        raise Rejected(
            kind.unavailable,
            f"zone {zone}: Nova's {kind.type} console address is not {'/'.join(kind.schemes)}: {url!r}",
        )
    return url


def open_serial_proxy(url: str, *, conn, zone: str, timeout: float) -> NovaSerialConsole:
    """Open the serial proxy's websocket (no Origin header: Nova's proxy checks one only when a
    browser sends it). The token in the URL is the proxy's only credential: it is never logged."""
    where = urlsplit(url)._replace(query="").geturl()
    try:
        connection = connect(
            url,
            ssl=_ssl_context(conn) if url.startswith("wss:") else None,
            subprotocols=["binary"],
            compression=None,
            open_timeout=timeout,
            close_timeout=5,
            max_size=MAX_FRAME_BYTES,
            user_agent_header="portal-console",
            legacy=True,  # the connection outlives this call: the session holds it (websockets 17)
        )
    except InvalidStatus as error:
        status = error.response.status_code
        detail = f"zone {zone}: serial proxy {where} answered {status} to the websocket upgrade"
        raise (Transient(NO_ANSWER, detail) if status >= 500 else Rejected(UNAVAILABLE, detail)) from None
    except InvalidURI:  # its message holds the address, token and all
        raise Rejected(UNAVAILABLE, f"zone {zone}: serial proxy {where}: not a websocket address") from None
    except InvalidHandshake as error:
        raise Rejected(UNAVAILABLE, f"zone {zone}: serial proxy {where}: {error}") from None
    except ssl.SSLCertVerificationError as error:
        raise Rejected(
            UNAVAILABLE,
            f"zone {zone}: serial proxy {where}: certificate not trusted ({error.verify_message})",
        ) from None
    except socket.gaierror as error:
        raise Rejected(
            UNAVAILABLE,
            f"zone {zone}: serial proxy host {where} not found ({error}): Nova's [serial_console] "
            "base_url must be reachable from the portal's web processes",
        ) from None
    except (TimeoutError, OSError) as error:
        raise Transient(NO_ANSWER, f"zone {zone}: serial proxy {where}: {error}") from None
    return NovaSerialConsole(connection)


class OpenStackConsoles:
    """Mixed into OpenStackBackend (it provides `_target`, `_connection`, `_cloud`, `_fetch`)."""

    def _console_url(self, backend_id: str, kind: ConsoleKind) -> tuple[str, str, object]:
        zone, server_id = self._target(backend_id)
        if not self._zone(zone).get(kind.setting):
            raise not_available(kind.capability, zone)
        conn = self._connection(zone)
        try:
            return zone, remote_console_url(self, conn, zone, server_id, kind), conn
        except NotFound:
            # Nova's 404 for …/servers/{id}/remote-consoles: the server, or only the route? Ask.
            with self._cloud(f"{kind.protocol} console", conn, server_id):
                self._fetch(conn, server_id)  # raises NotFound when the server is gone
            raise Rejected(
                not_available(kind.capability, zone).user_message,
                f"zone {zone}: Nova answered 404 to POST /servers/{server_id}/remote-consoles "
                "while the server exists: the cloud lacks the call",
            ) from None

    def open_serial_console(self, backend_id: str) -> ConsoleStream:
        zone, url, conn = self._console_url(backend_id, CONSOLE_KINDS[Capability.SERIAL_CONSOLE])
        return open_serial_proxy(url, conn=conn, zone=zone, timeout=float(self.options.get("timeout", 30)))

    def remote_console(self, backend_id: str) -> RemoteConsole:
        kind = CONSOLE_KINDS[Capability.GRAPHICAL_CONSOLE]
        _zone, url, _conn = self._console_url(backend_id, kind)
        return RemoteConsole(url=url, protocol=kind.protocol, kind=kind.type)
