"""A small, stateful OpenStack cloud served over real HTTP on 127.0.0.1, for the OpenStack backend.

It speaks just enough Keystone v3, Nova v2.1, Glance v2 and Neutron v2.0 for openstacksdk to
discover the services, sign in and drive servers through their life: BUILD turns ACTIVE after
`boot_seconds`, stop/start/reboot/resize take `action_seconds`, resize waits in VERIFY_RESIZE for a
confirmation, a wrong-state action answers 409 the way Nova words it. Knobs inject faults:
`fail_next(n)` answers the next n requests with a 503 from the "load balancer", `stall_next(n, s)`
holds them for s seconds, `revoke_tokens()` makes every issued token invalid (as a Keystone restart
with new fernet keys would), and a server whose name contains `no_valid_host_marker` ends in ERROR
with Nova's "No valid host was found" fault.

Fixtures at the bottom: `fake_openstack` (a fresh cloud per test) and `openstack_backend`, which
yields `(backend, zone_code)` for an `OpenStackBackend` pointed at it (flavors `s-1vcpu-1gb` and
`s-2vcpu-2gb`, images `debian-12` and `Debian 12`, network `public`).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

NOVA_MAX_MICROVERSION = "2.96"
USERNAME = "portal"
PASSWORD = "correct horse battery staple"
PROJECT = "portal-customers"
REGION = "RegionOne"
ZONE_CODE = "osl1-a"

# Nova's status for a (vm_state, task_state), as nova.api.openstack.common maps them.
_STATUS = {
    "building": {"default": "BUILD"},
    "active": {
        "default": "ACTIVE",
        "rebooting": "REBOOT",
        "reboot_started": "REBOOT",
        "rebooting_hard": "HARD_REBOOT",
        "reboot_started_hard": "HARD_REBOOT",
        "resize_prep": "RESIZE",
        "resize_migrating": "RESIZE",
        "resize_finish": "RESIZE",
    },
    "stopped": {
        "default": "SHUTOFF",
        "rebooting_hard": "HARD_REBOOT",
        "resize_prep": "RESIZE",
        "resize_migrating": "RESIZE",
        "resize_finish": "RESIZE",
    },
    "resized": {"default": "VERIFY_RESIZE"},
    "suspended": {"default": "SUSPENDED"},
    "paused": {"default": "PAUSED"},
    "shelved_offloaded": {"default": "SHELVED_OFFLOADED"},
    "error": {"default": "ERROR"},
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HttpError(Exception):
    def __init__(self, status: int, body: dict | str, headers: dict | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def nova_error(status: int, message: str) -> HttpError:
    key = {
        400: "badRequest",
        403: "forbidden",
        404: "itemNotFound",
        409: "conflictingRequest",
    }.get(status, "computeFault")
    return HttpError(status, {key: {"code": status, "message": message}})


def neutron_error(status: int, kind: str, message: str) -> HttpError:
    return HttpError(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


@dataclass
class Server:
    id: str
    name: str
    flavor: dict
    image_id: str
    metadata: dict
    tags: list
    key_name: str | None
    security_groups: list
    availability_zone: str
    addresses: dict
    user_data: str | None
    block_device_mapping: list = field(default_factory=list)
    vm_state: str = "building"
    task_state: str | None = "spawning"
    fault: dict | None = None
    created: str = field(default_factory=_now)
    # A transition in flight: when it lands (monotonic time) and what it does then.
    lands_at: float = 0.0
    landing: object = None
    old_flavor: dict | None = None
    stopped_before_resize: bool = False
    console: list = field(default_factory=list)

    @property
    def status(self) -> str:
        states = _STATUS[self.vm_state]
        return states.get(self.task_state or "", states["default"])


class FakeCloud:
    def __init__(
        self, *, boot_seconds: float = 0.2, action_seconds: float = 0.2, delete_seconds: float = 0.0
    ):
        self.boot_seconds = boot_seconds
        self.action_seconds = action_seconds
        self.delete_seconds = delete_seconds
        self.no_valid_host_marker = "novalidhost"
        self.lock = threading.RLock()
        self.tokens: dict[str, float] = {}
        self.servers: dict[str, Server] = {}
        self.deleted: dict[str, float] = {}  # id -> when it disappears
        self.keypairs: dict[str, dict] = {}
        self.flavors = {
            f["id"]: f
            for f in (
                {"id": "f-small", "name": "s-1vcpu-1gb", "vcpus": 1, "ram": 1024, "disk": 25},
                {"id": "f-medium", "name": "s-2vcpu-2gb", "vcpus": 2, "ram": 2048, "disk": 50},
                {"id": "f-large", "name": "m1.large", "vcpus": 4, "ram": 8192, "disk": 80},
            )
        }
        debian = str(uuid.UUID(int=12))
        self.images = {
            debian: {"id": debian, "name": "debian-12", "min_disk": 2},
            str(uuid.UUID(int=13)): {"id": str(uuid.UUID(int=13)), "name": "Debian 12", "min_disk": 2},
        }
        self.networks = {str(uuid.UUID(int=100)): {"id": str(uuid.UUID(int=100)), "name": "public"}}
        self.security_groups: dict[str, dict] = {}
        self.availability_zones = {"nova"}
        self.limits = {"maxTotalCores": 20, "maxTotalRAMSize": 51200, "maxTotalInstances": 10}
        # None: the hypervisor statistics are admin-only (403), as with Nova's default policy.
        self.hypervisor_statistics: dict | None = None
        self._failures: list[tuple[int, str]] = []  # (status, path prefix) per coming request
        self._stalls: list[float] = []
        self._frozen = False
        self.actions: list[tuple[str, str]] = []  # (server id, action) as asked, refused or not
        self.requests: list[tuple[str, str, int]] = []  # (method, path?query, status) as answered
        self._addresses = itertools.count(10)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

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
        self._frozen = True
        try:
            yield
        finally:
            self._frozen = False

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def calls(self, method: str, pattern: str) -> int:
        """How many answered requests matched (`pattern`: a regular expression on path?query)."""
        with self.lock:
            return sum(1 for m, path, _ in self.requests if m == method and re.search(pattern, path))

    def add_server(
        self, name: str, *, vm_state: str = "active", metadata: dict | None = None, tags: list | None = None
    ) -> Server:
        """A server made some other way (another tool, an operator, a crashed launch)."""
        with self.lock:
            server = Server(
                id=str(uuid.uuid4()),
                name=name,
                flavor=self.flavors["f-small"],
                image_id=next(iter(self.images)),
                metadata=dict(metadata or {}),
                tags=list(tags or []),
                key_name=None,
                security_groups=["default"],
                availability_zone="nova",
                addresses={},
                user_data=None,
                vm_state=vm_state,
                task_state=None,
            )
            self.servers[server.id] = server
            return server

    def live_servers(self) -> list[Server]:
        with self.lock:
            self._settle_all()
            return list(self.servers.values())

    # --- state -------------------------------------------------------------------------------

    def _transition(self, server: Server, seconds: float, landing) -> None:
        server.lands_at = time.monotonic() + seconds
        server.landing = landing

    def _settle(self, server: Server) -> None:
        if self._frozen:
            return
        if server.landing is not None and server.lands_at <= time.monotonic():
            landing, server.landing = server.landing, None
            landing(server)

    def _settle_all(self) -> None:
        for server in list(self.servers.values()):
            self._settle(server)
        now = time.monotonic()
        for server_id, gone_at in list(self.deleted.items()) if not self._frozen else ():
            if gone_at <= now:
                self.servers.pop(server_id, None)
                del self.deleted[server_id]

    def _server(self, server_id: str) -> Server:
        self._settle_all()
        server = self.servers.get(server_id)
        if server is None:
            raise nova_error(404, f"Instance {server_id} could not be found.")
        return server

    def _used(self) -> tuple[int, int, int]:
        live = list(self.servers.values())
        return sum(s.flavor["vcpus"] for s in live), sum(s.flavor["ram"] for s in live), len(live)

    # --- dispatch ----------------------------------------------------------------------------

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
            self._settle_all()
            parts = [p for p in path.split("/") if p]
            if not parts:
                return 300, {"versions": {"values": [self._keystone_version()]}}, {}
            service, rest = parts[0], parts[1:]
            if service == "identity":
                return self._identity(method, rest, headers, body)
            token = headers.get("X-Auth-Token", "")
            versions_only = len(rest) <= 1 and method == "GET"
            if not versions_only and self.tokens.get(token, 0) < time.time():
                return (
                    401,
                    {
                        "error": {
                            "code": 401,
                            "title": "Unauthorized",
                            "message": "The request you have made requires authentication.",
                        }
                    },
                    {"WWW-Authenticate": "Keystone uri=..."},
                )
            if service == "compute":
                return self._compute(method, rest, query, headers, body)
            if service == "image":
                return self._image(method, rest, query)
            if service == "network":
                return self._network(method, rest, query, body)
            return 404, {"error": "no such service"}, {}

    # --- Keystone ----------------------------------------------------------------------------

    def _keystone_version(self) -> dict:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self.url}/identity/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }

    def _identity(self, method: str, rest: list, headers, body):
        if method == "GET" and rest in ([], ["v3"]):
            if not rest:
                return 300, {"versions": {"values": [self._keystone_version()]}}, {}
            return 200, {"version": self._keystone_version()}, {}
        if rest == ["v3", "auth", "tokens"] and method == "POST":
            identity = (body or {}).get("auth", {}).get("identity", {})
            user = identity.get("password", {}).get("user", {})
            if user.get("name") != USERNAME or user.get("password") != PASSWORD:
                return (
                    401,
                    {
                        "error": {
                            "code": 401,
                            "title": "Unauthorized",
                            "message": "The request you have made requires authentication.",
                        }
                    },
                    {},
                )
            token = uuid.uuid4().hex
            expires = datetime.now(UTC) + timedelta(hours=1)
            self.tokens[token] = time.time() + 3600
            return 201, {"token": self._token_body(expires)}, {"X-Subject-Token": token}
        if rest == ["v3", "auth", "tokens"] and method == "GET":
            if self.tokens.get(headers.get("X-Subject-Token", ""), 0) < time.time():
                return 404, {"error": {"code": 404, "title": "Not Found", "message": "Token not found"}}, {}
            expires = datetime.fromtimestamp(self.tokens[headers["X-Subject-Token"]], UTC)
            return 200, {"token": self._token_body(expires)}, {"X-Subject-Token": headers["X-Subject-Token"]}
        return 404, {"error": {"code": 404, "title": "Not Found", "message": "not here"}}, {}

    def _token_body(self, expires: datetime) -> dict:
        def service(kind: str, name: str, url: str) -> dict:
            return {
                "id": hashlib.md5(kind.encode()).hexdigest(),  # noqa: S324 - an id, not security
                "type": kind,
                "name": name,
                "endpoints": [
                    {
                        "id": hashlib.md5(f"{kind}{interface}".encode()).hexdigest(),  # noqa: S324
                        "interface": interface,
                        "region": REGION,
                        "region_id": REGION,
                        "url": url,
                    }
                    for interface in ("public", "internal")
                ],
            }

        domain = {"id": "default", "name": "Default"}
        return {
            "methods": ["password"],
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "issued_at": _now(),
            "user": {"id": "u-portal", "name": USERNAME, "domain": domain, "password_expires_at": None},
            "project": {"id": "p-portal", "name": PROJECT, "domain": domain},
            "roles": [{"id": "r-member", "name": "member"}, {"id": "r-reader", "name": "reader"}],
            "catalog": [
                service("identity", "keystone", f"{self.url}/identity"),
                service("compute", "nova", f"{self.url}/compute/v2.1"),
                service("image", "glance", f"{self.url}/image"),
                service("network", "neutron", f"{self.url}/network"),
            ],
        }

    # --- Nova --------------------------------------------------------------------------------

    def _nova_version(self, version: str) -> dict:
        current = version == "v2.1"
        return {
            "id": version,
            "status": "CURRENT" if current else "SUPPORTED",
            "version": NOVA_MAX_MICROVERSION if current else "",
            "min_version": "2.1" if current else "",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{self.url}/compute/{version}/"}],
        }

    def _compute(self, method: str, rest: list, query: dict, headers, body):
        answer = self._nova(method, rest, query, headers, body)
        status, payload, extra = answer
        extra = {
            **extra,
            "OpenStack-API-Version": f"compute {_microversion(headers)}",
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
        }
        return status, payload, extra

    def _nova(self, method: str, rest: list, query: dict, headers, body):
        if method == "GET" and not rest:
            return 300, {"versions": [self._nova_version("v2.0"), self._nova_version("v2.1")]}, {}
        if rest[0] != "v2.1":
            return 404, {"itemNotFound": {"code": 404, "message": "Not found"}}, {}
        route = rest[1:]
        if method == "GET" and not route:
            return 200, {"version": self._nova_version("v2.1")}, {}
        microversion = _microversion(headers)
        match (method, route):
            case ("GET", ["flavors"]) | ("GET", ["flavors", "detail"]):
                return 200, {"flavors": [self._flavor_view(f) for f in self.flavors.values()]}, {}
            case ("GET", ["flavors", flavor_id]):
                if flavor_id not in self.flavors:
                    raise nova_error(404, f"Flavor {flavor_id} could not be found.")
                return 200, {"flavor": self._flavor_view(self.flavors[flavor_id])}, {}
            case ("GET", ["os-keypairs"]):
                return 200, {"keypairs": [{"keypair": k} for k in self.keypairs.values()]}, {}
            case ("GET", ["os-keypairs", name]):
                if name not in self.keypairs:
                    raise nova_error(404, f"Keypair {name} not found for user u-portal")
                return 200, {"keypair": self.keypairs[name]}, {}
            case ("POST", ["os-keypairs"]):
                return self._keypair_create(body["keypair"])
            case ("GET", ["limits"]):
                cores, ram, count = self._used()
                absolute = {
                    **self.limits,
                    "totalCoresUsed": cores,
                    "totalRAMUsed": ram,
                    "totalInstancesUsed": count,
                    "maxServerMeta": 128,
                    "maxTotalKeypairs": 100,
                    "maxServerGroups": 10,
                    "maxServerGroupMembers": 10,
                }
                return 200, {"limits": {"rate": [], "absolute": absolute}}, {}
            case ("GET", ["os-hypervisors", "statistics"]):
                if _version_tuple(microversion) >= (2, 88):
                    raise nova_error(404, "The resource could not be found.")
                if self.hypervisor_statistics is None:
                    raise nova_error(
                        403, "Policy doesn't allow os_compute_api:os-hypervisors:list-detail to be performed."
                    )
                return 200, {"hypervisor_statistics": self.hypervisor_statistics}, {}
            case ("POST", ["servers"]):
                return self._server_create(body["server"], microversion)
            case ("GET", ["servers"]) | ("GET", ["servers", "detail"]):
                servers = list(self.servers.values())
                if "tags" in query:
                    wanted = set(query["tags"][0].split(","))
                    servers = [s for s in servers if wanted <= set(s.tags)]
                if "name" in query:
                    servers = [s for s in servers if re.search(query["name"][0], s.name)]
                views = [self._server_view(s, microversion) for s in servers]
                if route == ["servers"]:
                    views = [{"id": v["id"], "name": v["name"], "links": v["links"]} for v in views]
                return 200, {"servers": views}, {}
            case ("GET", ["servers", server_id]):
                return 200, {"server": self._server_view(self._server(server_id), microversion)}, {}
            case ("DELETE", ["servers", server_id]):
                server = self._server(server_id)
                if server_id not in self.deleted:
                    server.task_state, server.landing = "deleting", None
                    self.deleted[server_id] = time.monotonic() + self.delete_seconds
                    self._settle_all()
                return 204, None, {}
            case ("POST", ["servers", server_id, "action"]):
                return self._server_action(self._server(server_id), body)
        raise nova_error(404, "The resource could not be found.")

    def _flavor_view(self, flavor: dict) -> dict:
        return {
            **flavor,
            "OS-FLV-DISABLED:disabled": False,
            "OS-FLV-EXT-DATA:ephemeral": 0,
            "os-flavor-access:is_public": True,
            "swap": "",
            "rxtx_factor": 1.0,
            "description": None,
            "extra_specs": {},
            "links": [{"rel": "self", "href": f"{self.url}/compute/v2.1/flavors/{flavor['id']}"}],
        }

    def _keypair_create(self, data: dict):
        name = data["name"]
        if name in self.keypairs:
            raise nova_error(409, f"Key pair '{name}' already exists.")
        public_key = data.get("public_key", "")
        if not re.match(
            r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$", public_key.strip()
        ):
            raise nova_error(400, "Keypair data is invalid: failed to generate fingerprint")
        digest = hashlib.md5(public_key.split()[1].encode()).hexdigest()  # noqa: S324
        self.keypairs[name] = {
            "name": name,
            "public_key": public_key,
            "fingerprint": ":".join(digest[i : i + 2] for i in range(0, 32, 2)),
            "type": "ssh",
            "user_id": "u-portal",
        }
        return 200, {"keypair": self.keypairs[name]}, {}

    def _server_create(self, data: dict, microversion: str):
        flavor = self.flavors.get(data.get("flavorRef", ""))
        if flavor is None:
            raise nova_error(400, "Invalid flavorRef provided.")
        mappings = data.get("block_device_mapping_v2") or []
        image_id = data.get("imageRef") or next(
            (m.get("uuid") for m in mappings if m.get("source_type") == "image"), ""
        )
        if image_id not in self.images:
            raise nova_error(400, f"Image {image_id} could not be found.")
        if data.get("key_name") and data["key_name"] not in self.keypairs:
            raise nova_error(400, "Invalid key_name provided.")
        for group in data.get("security_groups") or []:
            if not any(group["name"] in (g["id"], g["name"]) for g in self.security_groups.values()):
                raise nova_error(400, f"Unable to find security_group with name or uuid '{group['name']}'")
        zone = data.get("availability_zone") or "nova"
        if zone not in self.availability_zones:
            raise nova_error(400, "The requested availability zone is not available")
        user_data = data.get("user_data")
        if user_data is not None:
            try:
                base64.b64decode(user_data, validate=True)
            except ValueError:
                raise nova_error(400, "User data needs to be valid base 64.") from None
        networks = data.get("networks")
        if networks is None and _version_tuple(microversion) >= (2, 37):
            raise nova_error(400, "Invalid input for field/attribute networks. Value: None.")
        addresses = {}
        for network in networks if isinstance(networks, list) else [{"uuid": "auto"}]:
            net = self.networks.get(network.get("uuid", "")) or next(iter(self.networks.values()))
            addresses[net["name"]] = [
                {"addr": f"203.0.113.{next(self._addresses)}", "version": 4, "OS-EXT-IPS:type": "fixed"}
            ]
        for key, value in (data.get("metadata") or {}).items():
            if not isinstance(value, str) or len(key) > 255 or len(value) > 255:
                raise nova_error(400, "Invalid input for field/attribute metadata.")
        cores, ram, count = self._used()
        if cores + flavor["vcpus"] > self.limits["maxTotalCores"] >= 0:
            raise nova_error(
                403,
                f"Quota exceeded for cores: Requested {flavor['vcpus']}, but already used {cores} of "
                f"{self.limits['maxTotalCores']} cores",
            )
        if ram + flavor["ram"] > self.limits["maxTotalRAMSize"] >= 0:
            raise nova_error(
                403,
                f"Quota exceeded for ram: Requested {flavor['ram']}, but already used {ram} of "
                f"{self.limits['maxTotalRAMSize']} ram",
            )
        if count + 1 > self.limits["maxTotalInstances"] >= 0:
            raise nova_error(
                403,
                "Quota exceeded for instances: Requested 1, but already used "
                f"{count} of {self.limits['maxTotalInstances']} instances",
            )
        server = Server(
            id=str(uuid.uuid4()),
            name=data["name"],
            flavor=flavor,
            image_id=image_id,
            metadata=dict(data.get("metadata") or {}),
            tags=list(data.get("tags") or []),
            key_name=data.get("key_name"),
            security_groups=[
                next(
                    g["name"] for g in self.security_groups.values() if group["name"] in (g["id"], g["name"])
                )
                for group in data.get("security_groups") or []
            ]
            or ["default"],
            availability_zone=zone,
            addresses=addresses,
            user_data=user_data,
            block_device_mapping=mappings,
        )
        self.servers[server.id] = server
        if self.no_valid_host_marker in server.name:

            def fail(s: Server) -> None:
                s.vm_state, s.task_state = "error", None
                s.fault = {
                    "code": 500,
                    "created": _now(),
                    "message": "No valid host was found. There are not enough hosts available.",
                    "details": 'Traceback (most recent call last):\n  File "nova/conductor/manager.py" ...',
                }

            self._transition(server, self.boot_seconds, fail)
        else:

            def booted(s: Server) -> None:
                s.vm_state, s.task_state = "active", None
                s.console = [
                    f"[    0.000000] Linux version 6.1.0-28-cloud-amd64 ({s.name})",
                    f"{s.name} login: ",
                ]

            self._transition(server, self.boot_seconds, booted)
        view = {
            "id": server.id,
            "links": [{"rel": "self", "href": f"{self.url}/compute/v2.1/servers/{server.id}"}],
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": name} for name in server.security_groups],
            "adminPass": "not-for-you",
        }
        return 202, {"server": view}, {}

    def _server_view(self, server: Server, microversion: str) -> dict:
        if _version_tuple(microversion) >= (2, 47):
            flavor_view = {
                "original_name": server.flavor["name"],
                "vcpus": server.flavor["vcpus"],
                "ram": server.flavor["ram"],
                "disk": server.flavor["disk"],
                "ephemeral": 0,
                "swap": 0,
                "extra_specs": {},
            }
        else:
            flavor_view = {"id": server.flavor["id"], "links": []}
        view = {
            "id": server.id,
            "name": server.name,
            "status": server.status,
            "OS-EXT-STS:vm_state": server.vm_state,
            "OS-EXT-STS:task_state": server.task_state,
            "OS-EXT-STS:power_state": 1 if server.vm_state == "active" else 4,
            "OS-EXT-AZ:availability_zone": server.availability_zone,
            "addresses": server.addresses,
            "flavor": flavor_view,
            "image": "" if server.block_device_mapping else {"id": server.image_id, "links": []},
            "metadata": server.metadata,
            "tags": server.tags,
            "key_name": server.key_name,
            "security_groups": [{"name": name} for name in server.security_groups],
            "created": server.created,
            "updated": _now(),
            "tenant_id": "p-portal",
            "user_id": "u-portal",
            "hostId": hashlib.sha224(b"host1").hexdigest(),
            "accessIPv4": "",
            "accessIPv6": "",
            "progress": 0,
            "config_drive": "",
            "locked": False,
            "description": None,
            "os-extended-volumes:volumes_attached": [],
            "links": [{"rel": "self", "href": f"{self.url}/compute/v2.1/servers/{server.id}"}],
        }
        if server.fault is not None:
            view["fault"] = server.fault
        return view

    def _server_action(self, server: Server, body: dict):
        (action, args), *_ = body.items()
        self.actions.append((server.id, action))

        def refuse(check: str) -> HttpError:
            # nova.api.openstack.common.raise_http_conflict_for_instance_invalid_state
            if server.task_state is not None:
                return nova_error(
                    409,
                    f"Cannot '{check}' instance {server.id} while it is in task_state {server.task_state}",
                )
            return nova_error(
                409, f"Cannot '{check}' instance {server.id} while it is in vm_state {server.vm_state}"
            )

        def lands(vm_state: str):
            def land(s: Server) -> None:
                s.vm_state, s.task_state = vm_state, None

            return land

        if server.task_state == "deleting":
            raise refuse(action)
        match action:
            case "os-start":
                if server.vm_state != "stopped" or server.task_state is not None:
                    raise refuse("start")
                server.task_state = "powering-on"
                self._transition(server, self.action_seconds, lands("active"))
            case "os-stop":
                if server.vm_state not in ("active", "error") or server.task_state is not None:
                    raise refuse("stop")
                server.task_state = "powering-off"
                self._transition(server, self.action_seconds, lands("stopped"))
            case "reboot":
                hard = (args or {}).get("type", "").upper() == "HARD"
                allowed = ("active", "stopped", "error", "paused", "suspended") if hard else ("active",)
                if server.vm_state not in allowed or (server.task_state is not None and not hard):
                    raise refuse("reboot")
                server.task_state = "rebooting_hard" if hard else "rebooting"
                self._transition(server, self.action_seconds, lands("active"))
            case "resize":
                flavor = self.flavors.get(str((args or {}).get("flavorRef", "")))
                if flavor is None:
                    raise nova_error(400, "Invalid flavorRef provided.")
                if server.vm_state not in ("active", "stopped") or server.task_state is not None:
                    raise refuse("resize")
                if flavor["id"] == server.flavor["id"]:
                    raise nova_error(400, "When resizing, instances must change flavor!")
                server.task_state, server.stopped_before_resize = "resize_prep", server.vm_state == "stopped"

                def migrated(s: Server, flavor=flavor) -> None:
                    s.old_flavor, s.flavor = s.flavor, flavor
                    s.vm_state, s.task_state = "resized", None

                self._transition(server, self.action_seconds, migrated)
            case "confirmResize":
                if server.vm_state != "resized":
                    raise refuse("confirmResize")
                if server.landing is not None:  # a confirmation is already on its way
                    raise nova_error(400, "Instance has not been resized.")
                self._transition(
                    server,
                    self.action_seconds / 2,
                    lands("stopped" if server.stopped_before_resize else "active"),
                )
            case "os-getConsoleOutput":
                if server.vm_state == "building":
                    raise nova_error(409, f"Instance {server.id} is not ready")
                length = (args or {}).get("length")
                lines = server.console if length in (None, -1) else server.console[-int(length) :]
                return 200, {"output": "\n".join(lines) + "\n"}, {}
            case "unshelve":
                if server.vm_state != "shelved_offloaded":
                    raise refuse("unshelve")
                server.task_state = "unshelving"
                self._transition(server, self.action_seconds, lands("active"))
            case _:
                raise nova_error(400, f"There is no such action: {action}")
        return 202, None, {}

    # --- Glance ------------------------------------------------------------------------------

    def _image(self, method: str, rest: list, query: dict):
        if method == "GET" and not rest:
            versions = [
                {
                    "id": "v2.16",
                    "status": "CURRENT",
                    "links": [{"rel": "self", "href": f"{self.url}/image/v2/"}],
                },
                {
                    "id": "v2.0",
                    "status": "SUPPORTED",
                    "links": [{"rel": "self", "href": f"{self.url}/image/v2/"}],
                },
            ]
            return 300, {"versions": versions}, {}
        match (method, rest):
            case ("GET", ["v2", "images"]):
                images = [self._image_view(i) for i in self.images.values()]
                if "name" in query:
                    images = [i for i in images if i["name"] == query["name"][0]]
                return 200, {"images": images, "first": "/v2/images", "schema": "/v2/schemas/images"}, {}
            case ("GET", ["v2", "images", image_id]) if image_id in self.images:
                return 200, self._image_view(self.images[image_id]), {}
        return (
            404,
            "<html><body><h1>404 Not Found</h1>No image found with ID x</body></html>",
            {"Content-Type": "text/html"},
        )

    def _image_view(self, image: dict) -> dict:
        return {
            **image,
            "status": "active",
            "visibility": "public",
            "protected": False,
            "min_ram": 0,
            "disk_format": "qcow2",
            "container_format": "bare",
            "size": 356712448,
            "tags": [],
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "owner": "p-admin",
            "os_hidden": False,
            "self": f"/v2/images/{image['id']}",
            "file": f"/v2/images/{image['id']}/file",
            "schema": "/v2/schemas/image",
        }

    # --- Neutron -----------------------------------------------------------------------------

    def _network(self, method: str, rest: list, query: dict, body: dict | None):
        if method == "GET" and not rest:
            version = {
                "id": "v2.0",
                "status": "CURRENT",
                "links": [{"rel": "self", "href": f"{self.url}/network/v2.0/"}],
            }
            return 200, {"versions": [version]}, {}
        if rest[0] != "v2.0":
            raise neutron_error(404, "HTTPNotFound", "The resource could not be found.")
        match (method, rest[1:]):
            case ("GET", []):
                return 200, {"resources": [{"name": "network", "collection": "networks", "links": []}]}, {}
            case ("GET", ["networks"]):
                networks = [self._network_view(n) for n in self.networks.values()]
                return 200, {"networks": _filtered(networks, query)}, {}
            case ("GET", ["networks", network_id]):
                if network_id not in self.networks:
                    raise neutron_error(404, "NetworkNotFound", f"Network {network_id} could not be found.")
                return 200, {"network": self._network_view(self.networks[network_id])}, {}
            case ("GET", ["security-groups"]):
                return 200, {"security_groups": _filtered(list(self.security_groups.values()), query)}, {}
            case ("GET", ["security-groups", group_id]):
                if group_id not in self.security_groups:
                    raise neutron_error(
                        404, "SecurityGroupNotFound", f"Security group {group_id} does not exist"
                    )
                return 200, {"security_group": self.security_groups[group_id]}, {}
            case ("POST", ["security-groups"]):
                data = body["security_group"]
                group_id = str(uuid.uuid4())
                group = {
                    "id": group_id,
                    "name": data.get("name", ""),
                    "description": data.get("description", ""),
                    "project_id": "p-portal",
                    "tenant_id": "p-portal",
                    "stateful": True,
                    "tags": [],
                    "created_at": _now(),
                    "revision_number": 1,
                    "security_group_rules": [],
                }
                self.security_groups[group_id] = group
                for ethertype in ("IPv4", "IPv6"):  # Neutron's default egress rules
                    self._rule_create(
                        {"security_group_id": group_id, "direction": "egress", "ethertype": ethertype}
                    )
                return 201, {"security_group": group}, {}
            case ("GET", ["security-group-rules"]):
                rules = [r for g in self.security_groups.values() for r in g["security_group_rules"]]
                return 200, {"security_group_rules": _filtered(rules, query)}, {}
            case ("POST", ["security-group-rules"]):
                return 201, {"security_group_rule": self._rule_create(body["security_group_rule"])}, {}
        raise neutron_error(404, "HTTPNotFound", "The resource could not be found.")

    def _network_view(self, network: dict) -> dict:
        return {
            **network,
            "status": "ACTIVE",
            "admin_state_up": True,
            "shared": True,
            "router:external": True,
            "subnets": [],
            "project_id": "p-admin",
            "tenant_id": "p-admin",
            "mtu": 1500,
            "tags": [],
        }

    def _rule_create(self, data: dict) -> dict:
        group = self.security_groups.get(data.get("security_group_id", ""))
        if group is None:
            raise neutron_error(404, "SecurityGroupNotFound", "Security group does not exist")
        fields = (
            "direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
        )
        rule = {name: data.get(name) for name in fields}
        rule["ethertype"] = rule["ethertype"] or "IPv4"
        for existing in group["security_group_rules"]:
            if all(existing[name] == rule[name] for name in fields):
                raise neutron_error(
                    409,
                    "SecurityGroupRuleExists",
                    f"Security group rule already exists. Rule id is {existing['id']}.",
                )
        rule.update(
            id=str(uuid.uuid4()),
            security_group_id=group["id"],
            remote_group_id=None,
            description=data.get("description", ""),
            project_id="p-portal",
            tenant_id="p-portal",
        )
        group["security_group_rules"].append(rule)
        return rule


def _filtered(items: list[dict], query: dict) -> list[dict]:
    """Neutron's list filters: every query parameter that names a field must match."""
    for name, values in query.items():
        if items and name in items[0]:
            items = [item for item in items if str(item[name]) in values]
    return items


def _microversion(headers) -> str:
    value = headers.get("OpenStack-API-Version", "")
    if value.startswith("compute "):
        return value.split()[1]
    return headers.get("X-OpenStack-Nova-API-Version") or "2.1"


def _version_tuple(version: str) -> tuple[int, int]:
    if version == "latest":
        version = NOVA_MAX_MICROVERSION
    major, minor = version.split(".")
    return int(major), int(minor)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeCloud
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: don't wait 40 ms between

    def log_message(self, format, *args) -> None:
        pass

    def _answer(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
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
        if payload is not None:
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


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def fake_openstack() -> Iterator[FakeCloud]:
    cloud = FakeCloud().start()
    yield cloud
    cloud.stop()


def backend_options(cloud: FakeCloud, **overrides) -> dict:
    """OPTIONS for an `OpenStackBackend` that signs in to `cloud` (the password from the environment)."""
    options = {
        "auth": {
            "auth_url": cloud.auth_url,
            "username": USERNAME,
            "project_name": PROJECT,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "password_env": "FAKE_OPENSTACK_PASSWORD",
        "timeout": 5,
        "zones": {ZONE_CODE: {"region": REGION, "availability_zone": "nova", "network": "public"}},
    }
    options.update(overrides)
    return options


@pytest.fixture
def openstack_backend(db, fake_openstack, monkeypatch):
    """`(backend, zone_code)`: an `OpenStackBackend` for a fresh fake cloud (boot and actions ~0.2 s).

    Uses the database (the backend reads `Zone.backend_settings`); the zone needs no row there.
    """
    from portal.compute.backends.openstack import OpenStackBackend

    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    backend = OpenStackBackend("openstack", **backend_options(fake_openstack))
    yield backend, ZONE_CODE
    backend.close()
