"""The fake cloud's plumbing: one HTTP server on 127.0.0.1, the knobs that inject faults, the tokens
Keystone issued, and a router that hands each request to the service named by its first path
segment (`/compute/v2.1/servers` goes to the service named "compute", with `["v2.1", "servers"]`).

As in a cloud whose services sit behind one web server under path prefixes (devstack's layout), a
path outside every service is the web server's own HTML 404 (or, under /dashboard, Horizon's login
page with a 200), answered before any token is looked at;
inside a service, a request without a valid token is Keystone middleware's 401 (only the version
documents are open), and a route the service does not have is that API's own 404 body.

A service is a `Service` subclass in a module of its own; `FakeCloud(services)` makes one of each and
lets them be reached as attributes (`cloud.compute.servers`), which is also how they reach each other
(Nova checks an image with `self.cloud.image.images`).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# What Apache answers for a path no service is mounted on.
WEB_SERVER_NOT_FOUND = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>404 Not Found</title>\n'
    "</head><body>\n<h1>Not Found</h1>\n<p>The requested URL was not found on this server.</p>\n<hr>\n"
    "<address>Apache/2.4.62 (Debian) Server at 127.0.0.1 Port 80</address>\n</body></html>\n"
)
# Horizon's login page, which devstack serves at /dashboard: a web page where an API may be expected.
DASHBOARD = "dashboard"
DASHBOARD_PAGE = (
    '<!DOCTYPE html>\n<html>\n<head>\n<meta content="text/html; charset=utf-8" http-equiv="content-type" />\n'
    '<title>Login - OpenStack Dashboard</title>\n</head>\n<body id="splash">\n'
    '<form id="splash-login" action="/dashboard/auth/login/" method="POST">…</form>\n</body>\n</html>\n'
)
UNAUTHORIZED = {
    "error": {
        "code": 401,
        "title": "Unauthorized",
        "message": "The request you have made requires authentication.",
    }
}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HttpError(Exception):
    def __init__(self, status: int, body: dict | str, headers: dict | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class Service:
    """One OpenStack API of the fake cloud, served under `/<name>/`.

    A subclass sets `name` and its Keystone catalog entry (`catalog_type`, `catalog_name`, and
    `endpoint`, the path below `/<name>` that the catalog points at), and answers `handle`. It
    keeps its own state; `settle` lets whatever is due land before each request.
    """

    name = ""
    catalog_type = ""
    catalog_name = ""
    endpoint = ""
    needs_token = True
    # The regions whose catalog entry points here (empty: every region, from one state). Nova and
    # Glance are one per region; Neutron and Cinder answer both (the tests move no network or
    # volume between regions).
    regions: tuple[str, ...] = ()

    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def settle(self) -> None:
        pass

    def stop(self) -> None:
        """Stop what the service runs besides answering requests (Nova's serial proxy)."""

    def handle(self, method: str, rest: list, query: dict, headers, body: dict | None):
        """Answer one request: (status, body, headers), or raise HttpError."""
        raise NotImplementedError

    def not_found(self, headers) -> tuple:
        """This API's answer for a route it does not have. The default is webob's (Glance, Neutron
        and Cinder let webob render it): JSON when the client accepts it, as openstacksdk does."""
        return webob_error(headers, 404, "Not Found", "The resource could not be found.")


def webob_error(headers, status: int, title: str, explanation: str) -> tuple:
    """An error as webob renders it (`webob.exc.WSGIHTTPException.generate_response`)."""
    if "application/json" in (headers.get("Accept") or ""):
        body = {"message": f"{explanation}<br /><br />\n\n\n", "code": f"{status} {title}", "title": title}
        return status, body, {}
    page = (
        f"<html>\n <head>\n  <title>{status} {title}</title>\n </head>\n <body>\n  <h1>{status} {title}</h1>\n"
        f"  {explanation}<br /><br />\n\n\n\n </body>\n</html>"
    )
    return status, page, {"Content-Type": "text/html; charset=UTF-8"}


class FakeCloud:
    def __init__(self, services: Iterable[type[Service]]) -> None:
        self.lock = threading.RLock()
        self.tokens: dict[str, float] = {}  # token -> when it expires (time.time())
        self.is_frozen = False
        self.requests: list[tuple[str, str, int]] = []  # (method, path?query, status) as answered
        self._failures: list[tuple[int, str]] = []  # (status, path prefix) per coming request
        self._removed: list[tuple[str, re.Pattern]] = []  # routes the services do not have
        self._stalls: list[float] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.services: dict[str, Service] = {}
        for service_class in services:
            self.services[service_class.name] = service_class(self)

    def __getattr__(self, name: str) -> Service:
        services = self.__dict__.get("services", {})
        if name in services:
            return services[name]
        raise AttributeError(name)

    # --- running -----------------------------------------------------------------------------

    def start(self) -> FakeCloud:
        cloud = self

        class Handler(_Handler):
            fake = cloud

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="fake-openstack",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    # --- knobs -------------------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, status: int = 503, path: str = "") -> None:
        """Answer the next `count` requests whose path starts with `path` with `status`."""
        with self.lock:
            self._failures.extend([(status, path)] * count)

    def stall_next(self, count: int, seconds: float) -> None:
        with self.lock:
            self._stalls.extend([seconds] * count)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Nothing lands while inside: a test can look at a server mid-transition without racing
        the clock (what was due lands on the first request after)."""
        self.is_frozen = True
        try:
            yield
        finally:
            self.is_frozen = False

    def remove_route(self, method: str, pattern: str) -> None:
        """Make the service answer its own 404 for requests matching `pattern` (a regular expression
        searched in the path): a cloud without that API call or extension."""
        with self.lock:
            self._removed.append((method, re.compile(pattern)))

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def calls(self, method: str, pattern: str) -> int:
        """How many answered requests matched (`pattern`: a regular expression on path?query)."""
        with self.lock:
            return sum(1 for m, path, _ in self.requests if m == method and re.search(pattern, path))

    # --- dispatch ----------------------------------------------------------------------------

    def settle(self) -> None:
        for service in self.services.values():
            service.settle()

    def handle(self, method: str, path: str, query: dict, headers, body: dict | None):
        """Answer one request: (status, body, headers)."""
        with self.lock:
            stall = self._stalls.pop(0) if self._stalls else 0.0
        if stall:
            time.sleep(stall)
        with self.lock:
            for index, (status, prefix) in enumerate(self._failures):
                if path.startswith(prefix):
                    del self._failures[index]
                    page = "<html><body><h1>503 Service Unavailable</h1>No server is available.</body></html>"
                    return status, page, {"Content-Type": "text/html"}
            self.settle()
            parts = [p for p in path.split("/") if p]
            service = self.services.get(parts[0]) if parts else None
            if service is None and parts[:1] == [DASHBOARD]:
                return 200, DASHBOARD_PAGE, {"Content-Type": "text/html; charset=utf-8"}
            if service is None:
                return 404, WEB_SERVER_NOT_FOUND, {"Content-Type": "text/html; charset=iso-8859-1"}
            rest = parts[1:]
            if service.needs_token:
                token = headers.get("X-Auth-Token", "")
                versions_only = len(rest) <= 1 and method == "GET"
                if not versions_only and self.tokens.get(token, 0) < time.time():
                    return 401, UNAUTHORIZED, {"WWW-Authenticate": "Keystone uri=..."}
            if any(m == method and pattern.search(path) for m, pattern in self._removed):
                return service.not_found(headers)
            return service.handle(method, rest, query, headers, body)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeCloud
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: don't wait 40 ms between

    def log_message(self, format, *args) -> None:
        pass

    def _answer(self, method: str) -> None:
        parts = urlsplit(self.path)
        raw = self._read_body()
        try:
            # Image data (Glance's PUT …/file) is bytes; every other body is JSON.
            binary = self.headers.get("Content-Type", "") == "application/octet-stream"
            body = raw if binary else json.loads(raw) if raw else None
            try:
                status, payload, headers = self.fake.handle(
                    method, parts.path, parse_qs(parts.query), self.headers, body
                )
            except HttpError as error:
                status, payload, headers = error.status, error.body, error.headers
        except Exception as error:  # a bug in the fake must show up as a 500, not a hung client
            status, payload, headers = 500, {"computeFault": {"code": 500, "message": repr(error)}}, {}
        with self.fake.lock:
            self.fake.requests.append(
                (method, f"{parts.path}?{parts.query}" if parts.query else parts.path, status)
            )
        data = b""
        if isinstance(payload, bytes):
            data = payload
            headers = {"Content-Type": "application/octet-stream", **headers}
        elif payload is not None:
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            if data and "Content-Type" not in headers:
                self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("X-Openstack-Request-Id", f"req-{uuid.uuid4()}")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a stalled request past its timeout)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        chunks = []
        while True:  # HTTP/1.1 chunked: "<hex size>\r\n<data>\r\n" …, ending with a 0-size chunk
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def do_HEAD(self) -> None:
        self._answer("HEAD")
