"""Nova's remote consoles (`POST /servers/{id}/remote-consoles`, microversion 2.6+) and a serial
proxy (nova-serialproxy, which is websockify) on 127.0.0.1 behind them.

What Nova checks, in its order: the route exists from 2.6 on (an older microversion is the API's
404); the body is checked against the schema (`protocol` one of vnc, spice, rdp, serial, and mks
from 2.8; `type` one of novnc, xvpvnc, rdp-html5, spice-html5, serial, webmks from 2.8; both
required, nothing else) — 400; the server — 404; a server without a host yet (building) is "not
ready" and a server deleting or migrating is in the wrong task state — 409; the handler: serial
with any type but serial is "Invalid console type" and a console the cloud does not run (every
graphical one but noVNC, noVNC when `vnc_enabled` is off, the serial one when `serial_enabled`
is off, as with `[vnc] enabled = False` / `[serial_console] enabled = False`) "Unavailable console
type" — 400. A server that is not ACTIVE is refused with
409 here (Nova's libvirt driver may instead hand out an address whose proxy then finds no port).

A noVNC console is an address of the cloud's noVNC proxy (nova-novncproxy), which the customer's
browser opens: `http://127.0.0.1:<port>/vnc_lite.html?path=%3Ftoken%3D<uuid>` (the shape of
`[vnc] novncproxy_base_url` since Victoria); the fake proxy answers its page for a valid token
(the server's name in its title) and 401 for an unknown or expired one.

A serial console's answer is `ws://127.0.0.1:<port>/?token=<uuid>`; tokens are good for `token_ttl` seconds
(nova.conf `[consoleauth] token_ttl`, 600 by default). The proxy (websockets' threaded server,
as websockify speaks the same protocol) refuses the upgrade (400) of a client that offers
neither the "binary" nor the "base64" subprotocol, then checks the token: an unknown or expired one is closed after the handshake, as websockify
does. Then it relays the server's serial line: a getty's login prompt and a tiny shell
(`FakeSerialGuest`), which echoes what is typed as a serial line does. It closes the connection
when the server stops or is deleted, as the compute host's port goes away.
"""

from __future__ import annotations

import html
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server as WebsocketServer
from websockets.sync.server import ServerConnection, serve

from tests.backends.fake_openstack.nova_server import Server, nova_error, version_tuple

PROTOCOLS = ("vnc", "spice", "rdp", "serial")
TYPES = ("novnc", "xvpvnc", "rdp-html5", "spice-html5", "serial")
NOT_FOUND = "The resource could not be found."


class FakeSerialGuest:
    """The server's side of its serial line: a getty, then a shell. Like a tty it echoes what is
    typed (the terminal echoes nothing), Enter arrives as CR and lines end in CR LF."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.line = ""
        self.stage = "login"
        self.user = ""

    def prompt(self) -> str:
        if self.stage == "shell":
            return f"{self.user}@{self.name}:~$ "
        return "Password: " if self.stage == "password" else f"{self.name} login: "

    def feed(self, data: bytes) -> bytes:
        out = ""
        for char in data.decode("utf-8", errors="replace"):
            if char in "\r\n":
                line, self.line = self.line.strip(), ""
                out += "\r\n" + self.enter(line)
            elif char == "\x7f":
                if self.line:
                    self.line = self.line[:-1]
                    out += "" if self.stage == "password" else "\b \b"
            elif char.isprintable():
                self.line += char
                out += "" if self.stage == "password" else char
        return out.encode()

    def enter(self, line: str) -> str:
        if self.stage == "login":
            if not line:
                return f"\r\nDebian GNU/Linux 12 {self.name} ttyS0\r\n\r\n{self.prompt()}"
            self.user, self.stage = line[:32], "password"
            return self.prompt()
        if self.stage == "password":
            self.stage = "shell"
            return f"Linux {self.name} 6.1.0-28-cloud-amd64 #1 SMP x86_64\r\n\r\n{self.prompt()}"
        program, _, rest = line.partition(" ")
        if not line:
            answer = ""
        elif program == "echo":
            answer = rest + "\r\n"
        elif program == "hostname":
            answer = self.name + "\r\n"
        elif line == "uname -a":
            answer = f"Linux {self.name} 6.1.0-28-cloud-amd64 #1 SMP Debian 6.1.119-1 x86_64 GNU/Linux\r\n"
        elif program in ("exit", "logout"):
            self.stage, self.user = "login", ""
            return f"\r\nDebian GNU/Linux 12 {self.name} ttyS0\r\n\r\n{self.prompt()}"
        else:
            answer = f"-bash: {program}: command not found\r\n"
        return answer + self.prompt()


class NovaConsoles:
    def __init__(self, compute) -> None:
        self.compute = compute
        self.serial_enabled = True
        self.vnc_enabled = True
        self.vnc_tokens: dict[str, tuple[str, float]] = {}  # token -> (server id, expires at)
        self._novnc: ThreadingHTTPServer | None = None
        self.token_ttl = 600.0
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (server id, expires at, monotonic)
        self.guests: dict[str, FakeSerialGuest] = {}  # server id -> its serial line
        self.connections: list[dict] = []  # what each client of the proxy offered, as seen
        self.stopped = False
        self.tls = None  # an ssl.SSLContext: the proxy serves wss:// (Nova's [serial_console] base_url)
        self._proxy: WebsocketServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def cloud(self):
        return self.compute.cloud

    # --- the API ------------------------------------------------------------------------------

    def route(self, method: str, route: list, body: dict | None, microversion: str):
        """Answer `POST /servers/{id}/remote-consoles`, or None for a route that is not that."""
        match (method, route):
            case ("POST", ["servers", server_id, "remote-consoles"]):
                if version_tuple(microversion) < (2, 6):
                    raise nova_error(404, NOT_FOUND)  # the method is not there before 2.6
                protocol, console_type = _validated(body, microversion)
                server = self.compute.server(server_id)
                self._check_state(server)
                return 200, {"remote_console": self._create(server, protocol, console_type)}, {}
        return None

    def _check_state(self, server: Server) -> None:
        if server.vm_state == "building":  # check_instance_host: no host yet
            raise nova_error(409, f"Instance {server.id} is not ready.")
        if server.task_state in ("deleting", "migrating"):
            raise nova_error(
                409,
                f"Cannot 'get_serial_console' instance {server.id} while it is in task_state {server.task_state}",
            )
        if server.vm_state != "active":
            raise nova_error(
                409,
                f"Cannot 'get_serial_console' instance {server.id} while it is in vm_state {server.vm_state}",
            )

    def _create(self, server: Server, protocol: str, console_type: str) -> dict:
        if protocol == "serial" and console_type != "serial":
            raise nova_error(400, f"Invalid console type {console_type}")
        if protocol == "vnc" and console_type not in ("novnc", "xvpvnc"):
            raise nova_error(400, f"Invalid console type {console_type}")
        if protocol == "vnc" and console_type == "novnc" and self.vnc_enabled:
            token = str(uuid.uuid4())
            self.vnc_tokens[token] = (server.id, time.monotonic() + self.token_ttl)
            url = f"{self.novnc_url}/vnc_lite.html?path={quote(f'?token={token}', safe='')}"
            return {"protocol": protocol, "type": console_type, "url": url}
        if protocol != "serial" or not self.serial_enabled:
            raise nova_error(400, f"Unavailable console type {console_type}.")
        token = str(uuid.uuid4())
        self.tokens[token] = (server.id, time.monotonic() + self.token_ttl)
        return {"protocol": protocol, "type": console_type, "url": f"{self.proxy_url}/?token={token}"}

    # --- the serial proxy ------------------------------------------------------------------------

    @property
    def proxy_url(self) -> str:
        if self._proxy is None:
            self.stopped = False
            self._proxy = serve(
                self._relay, "127.0.0.1", 0, subprotocols=["binary", "base64"], compression=None, ssl=self.tls
            )
            self._thread = threading.Thread(
                target=self._proxy.serve_forever, daemon=True, name="fake-nova-serialproxy"
            )
            self._thread.start()
        host, port = self._proxy.socket.getsockname()[:2]
        return f"{'wss' if self.tls else 'ws'}://{host}:{port}"

    def stop(self) -> None:
        self.stopped = True  # the relays still open end too
        if self._proxy is not None:
            self._proxy.shutdown()
            self._proxy = None
        if self._novnc is not None:
            self._novnc.shutdown()
            self._novnc.server_close()
            self._novnc = None

    # --- the noVNC proxy ---------------------------------------------------------------------------

    @property
    def novnc_url(self) -> str:
        if self._novnc is None:
            self._novnc = ThreadingHTTPServer(("127.0.0.1", 0), _novnc_handler(self))
            self._novnc.daemon_threads = True
            threading.Thread(
                target=self._novnc.serve_forever, daemon=True, name="fake-nova-novncproxy"
            ).start()
        host, port = self._novnc.server_address[:2]
        return f"http://{host}:{port}"

    def novnc_page(self, path: str) -> tuple[int, str]:
        """What nova-novncproxy serves for `path`: the console page for a valid token, else 401."""
        parts = urlsplit(path)
        inner = parse_qs(parts.query).get("path", [""])[0]
        token = parse_qs(urlsplit(inner).query).get("token", [""])[0]
        with self.cloud.lock:
            server_id, expires = self.vnc_tokens.get(token, ("", 0.0))
            server = self.compute.servers.get(server_id)
        if parts.path != "/vnc_lite.html":
            return 404, "<h1>404 Not Found</h1>"
        if server is None or expires < time.monotonic():
            return 401, "<h1>Failed to connect to server: the token is invalid or has expired</h1>"
        name = html.escape(server.name)
        return 200, f"<title>{name} - noVNC</title><h1>noVNC</h1><p id=status>Connected to {name}</p>"

    def _running(self, server_id: str) -> Server | None:
        with self.cloud.lock:
            self.compute.settle()
            server = self.compute.servers.get(server_id)
            if server is None or server.vm_state != "active" or server.task_state == "deleting":
                return None
            return server

    def _relay(self, connection: ServerConnection) -> None:
        request = connection.request
        token = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
        with self.cloud.lock:
            self.connections.append(
                {"subprotocol": connection.subprotocol, "origin": request.headers.get("Origin")}
            )
        with self.cloud.lock:
            server_id, expires = self.tokens.get(token, ("", 0.0))
        if expires < time.monotonic():
            connection.close(1011, f"The token '{token[:8]}…' is invalid or has expired")
            return
        server = self._running(server_id)
        if server is None:  # the compute host's port is closed: nothing to connect to
            connection.close(1011, "Connection refused")
            return
        with self.cloud.lock:
            guest = self.guests.setdefault(server_id, FakeSerialGuest(server.name))
        while True:
            if self.stopped or self._running(server_id) is None:
                connection.close(1000, "")
                return
            try:
                data = connection.recv(timeout=0.1, decode=False)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            with self.cloud.lock:
                answer = guest.feed(data)
            if answer:
                try:
                    connection.send(answer)
                except ConnectionClosed:
                    return


def _validated(body: dict | None, microversion: str) -> tuple[str, str]:
    """The request body against Nova's schema (remote_consoles.create_v26 / create_v28)."""
    protocols, types = PROTOCOLS, TYPES
    if version_tuple(microversion) >= (2, 8):
        protocols, types = (*PROTOCOLS, "mks"), (*TYPES, "webmks")
    console = (body or {}).get("remote_console")
    if not isinstance(body, dict) or set(body) != {"remote_console"} or not isinstance(console, dict):
        raise nova_error(
            400, "Invalid input for field/attribute remote_console. 'remote_console' is a required property"
        )
    for key in ("protocol", "type"):
        if key not in console:
            raise nova_error(
                400, f"Invalid input for field/attribute remote_console. '{key}' is a required property"
            )
    extra = set(console) - {"protocol", "type"}
    if extra:
        raise nova_error(
            400,
            "Invalid input for field/attribute remote_console. Additional properties are not allowed "
            f"({', '.join(repr(k) for k in sorted(extra))} was unexpected)",
        )
    for key, allowed in (("protocol", protocols), ("type", types)):
        if console[key] not in allowed:
            raise nova_error(
                400,
                f"Invalid input for field/attribute {key}. Value: {console[key]}. "
                f"{console[key]!r} is not one of {list(allowed)}",
            )
    return console["protocol"], console["type"]


def _novnc_handler(consoles: NovaConsoles) -> type[BaseHTTPRequestHandler]:
    class NoVncProxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = consoles.novnc_page(self.path)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return NoVncProxy
