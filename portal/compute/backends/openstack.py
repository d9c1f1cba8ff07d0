"""OpenStack clouds through openstacksdk: Nova servers, Glance images, Neutron networks and groups,
and storage (Cinder volumes and snapshots, server snapshots as Glance images: `openstack_storage`).

Each zone names a cloud, a region and an availability zone (`zone_settings`); a server's
`backend_id` is `"<zone>:<nova server id>"` so that later calls, which get no zone, find the right
cloud again. Every call submits and returns: nothing here waits for a server to change state, the
portal polls `get_server` (which also confirms a finished resize, as a customer would click
"confirm"). Servers carry the portal's instance UUID in their metadata and as a tag, which makes
creation idempotent: a second `create_server` with the same key adopts the first server.

Credentials never live in the database: a zone's `cloud` names an entry of clouds.yaml (the normal
search path, or the file in OPTIONS["clouds_yaml"]); without one, OPTIONS["auth"] holds everything
but the password, which is read from the environment variable named in OPTIONS["password_env"].
docs/backends/openstack.md describes the settings. What needs no call to the cloud (states, faults,
errors, names) is in `openstack_mapping`; what is found or made for a new server (image, flavor,
network, keypair, security group, boot volume) in `openstack_lookups`.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

import openstack
import openstack.config
import requests
from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as sdk_exceptions

from portal.compute.backends import openstack_lookups as lookups
from portal.compute.backends.base import (
    IDEMPOTENCY_METADATA_KEY,
    REBUILD_METADATA_KEY,
    BackendError,
    BackendState,
    Capability,
    ComputeBackend,
    NotFound,
    Rejected,
    ServerSpec,
    ServerState,
    Transient,
    not_available,
)
from portal.compute.backends.openstack_capacity import OpenStackCapacity
from portal.compute.backends.openstack_console import CONSOLE_KINDS, OpenStackConsoles
from portal.compute.backends.openstack_firewall import OpenStackFirewall
from portal.compute.backends.openstack_image_copy import OpenStackImageCopy
from portal.compute.backends.openstack_mapping import (
    GENERIC_FAULT,
    GONE,
    IS_DOING,
    NOT_CONNECTED,
    TAG_PREFIX,
    error_text,
    flavor_code,
    plain_fault,
    server_addresses,
    server_is_gone,
    server_state,
    translated_error,
    user_data_with_keys,
)
from portal.compute.backends.openstack_networks import OpenStackNetworks
from portal.compute.backends.openstack_password import OpenStackPassword
from portal.compute.backends.openstack_rescue import OpenStackRescue
from portal.compute.backends.openstack_storage import ZONE_METADATA_KEY, OpenStackStorage

log = logging.getLogger(__name__)
B = BackendState

SERVICES = ("compute", "image", "network", "identity", "block_storage")
# What a zone can do only with Cinder in the catalog, and only with Glance.
CINDER_CAPABILITIES = frozenset(
    {Capability.LARGE_ROOT_DISK, Capability.VOLUMES, Capability.VOLUME_EXTEND, Capability.VOLUME_SNAPSHOTS}
)
GLANCE_CAPABILITIES = frozenset(
    {Capability.SERVER_SNAPSHOTS, Capability.IMAGE_COPY, Capability.SERVER_REBUILD}
)
# How long what a cloud can do (`capabilities`) is believed before it is asked again.
CAPABILITIES_SECONDS = 300.0


class OpenStackBackend(
    OpenStackCapacity,
    OpenStackFirewall,
    OpenStackNetworks,
    OpenStackConsoles,
    OpenStackRescue,
    OpenStackPassword,
    OpenStackStorage,
    OpenStackImageCopy,
    ComputeBackend,
):
    def __init__(self, name: str, **options) -> None:
        super().__init__(name, **options)
        # One connection per (cloud, region) per process: keystoneauth keeps the token and the
        # discovered endpoints on it. Keyed by pid too, as a forked worker must not share sockets.
        self._connections: dict[tuple, openstack.connection.Connection] = {}
        # What each cloud can do, with when to ask again (monotonic time), by the same key.
        self._capabilities: dict[tuple, tuple[float, frozenset[Capability]]] = {}
        self._lock = threading.Lock()

    # --- connections -------------------------------------------------------------------------

    def _zone(self, zone: str) -> dict:
        settings = self.zone_settings(zone)
        if not settings:
            raise Rejected(NOT_CONNECTED, f"zone {zone!r} has no OpenStack settings")
        return settings

    def _key(self, settings: dict) -> tuple:
        return (os.getpid(), settings.get("cloud") or "", settings.get("region") or "")

    def _connection(self, zone: str) -> openstack.connection.Connection:
        settings = self._zone(zone)
        key = self._key(settings)
        with self._lock:
            connection = self._connections.get(key)
            if connection is None:
                connection = self._connections[key] = openstack.connection.Connection(
                    config=self._cloud_region(zone, settings)
                )
        return connection

    def _cloud_region(self, zone: str, settings: dict):
        timeout = float(self.options.get("timeout", 30))
        # Nobody retries inside a call: a failure is Transient and the portal retries later.
        tuning = {"api_timeout": timeout, "connect_retries": 0, "status_code_retries": 0}
        for service in SERVICES:
            tuning[f"{service}_status_code_retries"] = 0
            tuning[f"{service}_connect_retries"] = 0
        if settings.get("region"):
            tuning["region_name"] = settings["region"]
        try:
            if settings.get("cloud"):
                files = [self.options["clouds_yaml"]] if self.options.get("clouds_yaml") else None
                loader = openstack.config.OpenStackConfig(config_files=files, load_envvars=False)
                return loader.get_one(cloud=settings["cloud"], **tuning)
            auth = dict(self.options.get("auth") or {})
            variable = self.options.get("password_env", "")
            password = os.environ.get(variable, "") if variable else ""
            if not password:
                raise Rejected(
                    NOT_CONNECTED, f"environment variable {variable or '(password_env unset)'} is empty"
                )
            auth["password"] = password
            loader = openstack.config.OpenStackConfig(load_yaml_config=False, load_envvars=False)
            return loader.get_one(auth_type="password", auth=auth, **tuning)
        except (sdk_exceptions.SDKException, ks_exceptions.ClientException) as error:
            raise Rejected(NOT_CONNECTED, f"zone {zone}: OpenStack configuration: {error}") from None

    def close(self) -> None:
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
            self._capabilities.clear()
        for connection in connections:
            connection.close()

    @contextmanager
    def _cloud(self, what: str, conn, server_id: str = "", *, gone=(), fault=plain_fault) -> Iterator[None]:
        """Turn what openstacksdk and keystoneauth raise into the portal's three kinds of error
        (`server_id`: the server the call is about, whose 404 alone means it is gone; `gone`: the
        same for a volume or snapshot, as (collection, id, message); `fault`: words a refusal)."""
        try:
            yield
        except BackendError:
            raise
        except (sdk_exceptions.SDKException, ks_exceptions.ClientException) as error:
            auth_url = str(conn.config.config.get("auth", {}).get("auth_url", ""))
            raise translated_error(
                what, error, auth_url=auth_url, server_id=server_id, gone=gone, fault=fault
            ) from error
        except requests.exceptions.InvalidJSONError as error:
            # openstacksdk reads an answer that is not JSON (a web page where an API should be) here.
            raise Rejected(
                NOT_CONNECTED,
                f"{what}: the cloud answered with something that is not JSON: {error}; "
                "check the endpoints in its catalog",
            ) from error

    def _target(self, backend_id: str) -> tuple[str, str]:
        zone, _, server_id = backend_id.partition(":")
        if not zone or not server_id:
            raise NotFound(GONE, f"malformed backend id {backend_id!r}")
        return zone, server_id

    # --- lookups -----------------------------------------------------------------------------

    def _mapping(self, kind: str, settings: dict) -> dict:
        """Portal code → cloud name for flavors or images: OPTIONS, overlaid by the zone's."""
        return {**(self.options.get(kind) or {}), **(settings.get(kind) or {})}

    def _flavor_code(self, settings: dict, server) -> str:
        return flavor_code(self._mapping("flavors", settings), server.flavor)

    def _ours(self, conn, key: str) -> list:
        """Servers made for this instance, oldest first (more than one only after a race)."""
        servers = [
            server
            for server in conn.compute.servers(details=True, tags=TAG_PREFIX + key)
            if (server.metadata or {}).get(IDEMPOTENCY_METADATA_KEY) == key and server.status != "DELETED"
        ]
        return sorted(servers, key=lambda s: (s.created_at or "", s.id))

    # --- reading -----------------------------------------------------------------------------

    def _state(self, zone: str, settings: dict, server) -> ServerState:
        state = server_state(server.status or "", server.task_state)
        fault = ""
        if state == B.ERROR:
            raw = (server.fault or {}).get("message", "") if isinstance(server.fault, dict) else ""
            fault = plain_fault(raw) if raw else GENERIC_FAULT
            log.info("openstack server in error", extra={"server": server.id, "zone": zone, "fault": raw})
        metadata = dict(server.metadata or {})
        return ServerState(
            backend_id=f"{zone}:{server.id}",
            state=state,
            addresses=server_addresses(server.addresses or {}),
            fault=fault,
            flavor=self._flavor_code(settings, server),
            idempotency_key=metadata.get(IDEMPOTENCY_METADATA_KEY, ""),
            name=server.name or "",
            metadata=metadata,
        )

    def _fetch(self, conn, server_id: str):
        try:
            server = conn.compute.get_server(server_id)
        except sdk_exceptions.NotFoundException as error:
            if server_is_gone(error, server_id):
                raise NotFound(GONE, f"server {server_id}: {error_text(error)}") from None
            raise
        if server.status == "DELETED":
            raise NotFound(GONE, f"server {server_id} is DELETED")
        if not server.status:
            # openstacksdk keeps quiet about an answer it could not read (a web page where Nova
            # should be): what comes back is a server with nothing but its id.
            raise Rejected(
                NOT_CONNECTED,
                f"GET server {server_id}: the answer is not Nova's (no status); "
                "check the compute endpoint in the cloud's catalog",
            )
        return server

    # --- the interface -----------------------------------------------------------------------

    def create_server(self, spec: ServerSpec) -> ServerState:
        settings = self._zone(spec.zone)
        conn = self._connection(spec.zone)
        with self._cloud("create server", conn):
            ours = self._ours(conn, spec.idempotency_key)
            if ours:
                return self._state(spec.zone, settings, ours[0])
            # What the zone cannot do is refused before anything is made for the server.
            capabilities = self.capabilities(spec.zone)
            flavor = lookups.find_flavor(conn, self._mapping("flavors", settings), spec.flavor)
            boot_volume = lookups.boot_volume(spec, settings, flavor, capabilities)
            if spec.firewall_rules and Capability.FIREWALL not in capabilities:
                raise Rejected(
                    "This zone cannot apply firewall rules. Launch without a firewall, or choose another zone.",
                    f"zone {spec.zone}: Neutron has no security-group extension",
                )
            if spec.image_backend_id:  # a server snapshot of ours: a Glance image id, checked active
                image_id = lookups.image_id(conn, {}, spec.image_backend_id)
            else:
                image_id = lookups.image_id(conn, self._mapping("images", settings), spec.image)
            network_id = lookups.network_id(conn, settings)
            keys = [key.strip() for key in spec.ssh_keys if key.strip()]
            attrs = {
                "name": spec.name,
                "flavor_id": flavor.id,
                "networks": [{"uuid": network_id}] if network_id else "auto",
                "metadata": {IDEMPOTENCY_METADATA_KEY: spec.idempotency_key, ZONE_METADATA_KEY: spec.zone},
                "tags": [TAG_PREFIX + spec.idempotency_key, f"{TAG_PREFIX}zone-{spec.zone}"],
            }
            if Capability.FIREWALL in capabilities:
                attrs["security_groups"] = [{"name": lookups.security_group(conn, spec.firewall_rules)}]
            if settings.get("availability_zone"):
                attrs["availability_zone"] = settings["availability_zone"]
            if keys:
                attrs["key_name"] = lookups.keypair(conn, keys[0])
            user_data = user_data_with_keys(spec.user_data, keys[1:])
            if user_data:
                attrs["user_data"] = base64.b64encode(user_data.encode()).decode()
            if boot_volume is not None:
                attrs["block_device_mapping"] = [{**boot_volume, "uuid": image_id}]
            else:
                attrs["image_id"] = image_id
            created = conn.compute.create_server(**attrs)
            ours = self._ours(conn, spec.idempotency_key)
            # Two racing creations (a step re-run after a lost answer): keep the oldest, delete ours.
            if ours and ours[0].id != created.id:
                conn.compute.delete_server(created.id, ignore_missing=True)
                return self._state(spec.zone, settings, ours[0])
            # The answer to POST /servers holds little more than an id: read the server itself.
            return self._state(spec.zone, settings, self._fetch(conn, created.id))

    def get_server(self, backend_id: str) -> ServerState:
        zone, server_id = self._target(backend_id)
        settings = self._zone(zone)
        conn = self._connection(zone)
        with self._cloud("get server", conn, server_id):
            server = self._fetch(conn, server_id)
            if server.status == "VERIFY_RESIZE":
                # Refused while an earlier confirmation is still on its way: nothing to do.
                with suppress(sdk_exceptions.BadRequestException, sdk_exceptions.ConflictException):
                    conn.compute.confirm_server_resize(server_id)
            return self._state(zone, settings, server)

    def find_server(self, zone: str, idempotency_key: str) -> ServerState | None:
        settings = self._zone(zone)
        conn = self._connection(zone)
        with self._cloud("find server", conn):
            ours = self._ours(conn, idempotency_key)
            return self._state(zone, settings, ours[0]) if ours else None

    def list_servers(self, zone: str) -> list[ServerState]:
        settings = self._zone(zone)
        conn = self._connection(zone)
        states = []
        with self._cloud("list servers", conn):
            for server in conn.compute.servers(details=True, tags=f"{TAG_PREFIX}zone-{zone}"):
                metadata = server.metadata or {}
                if IDEMPOTENCY_METADATA_KEY not in metadata or metadata.get(ZONE_METADATA_KEY) != zone:
                    continue
                if server.status == "DELETED":
                    continue
                try:
                    states.append(self._state(zone, settings, server))
                except Transient:
                    continue  # a server in UNKNOWN state: the next round sees it
        return states

    def _action(self, backend_id: str, verb: str, act, *, fine: set[B], redirect=None) -> None:
        """Submit one action; when Nova refuses it (409), look at the server: already there or on
        the way is a no-op, anything else is Rejected in plain words."""
        zone, server_id = self._target(backend_id)
        conn = self._connection(zone)
        with self._cloud(f"{verb} server", conn, server_id):
            try:
                act(conn, server_id)
                return
            except sdk_exceptions.ConflictException as conflict:
                server = self._fetch(conn, server_id)
                state = server_state(server.status or "", server.task_state)
                if state in fine:
                    return
                if redirect is not None and redirect(conn, server):
                    return
                raise Rejected(
                    f"The server is {IS_DOING[state]} right now, so it can't be {verb}. "
                    "Try again once it has settled.",
                    f"{verb} {backend_id}: {error_text(conflict)}",
                ) from None

    def start_server(self, backend_id: str) -> None:
        def wake(conn, server) -> bool:
            # Stopped in another way than Nova's stop: each has its own way back.
            action = {
                "SUSPENDED": conn.compute.resume_server,
                "PAUSED": conn.compute.unpause_server,
                "SHELVED": conn.compute.unshelve_server,
                "SHELVED_OFFLOADED": conn.compute.unshelve_server,
            }.get(server.status)
            if action is None or server.task_state:
                return False
            action(server.id)
            return True

        self._action(
            backend_id,
            "started",
            lambda conn, sid: conn.compute.start_server(sid),
            fine={B.RUNNING, B.STARTING},
            redirect=wake,
        )

    def stop_server(self, backend_id: str) -> None:
        self._action(
            backend_id,
            "stopped",
            lambda conn, sid: conn.compute.stop_server(sid),
            fine={B.STOPPED, B.STOPPING},
        )

    def reboot_server(self, backend_id: str, *, hard: bool = False) -> None:
        kind = "HARD" if hard else "SOFT"
        self._action(
            backend_id,
            "rebooted",
            lambda conn, sid: conn.compute.reboot_server(sid, kind),
            fine={B.REBOOTING},
        )

    def resize_server(self, backend_id: str, *, flavor: str, vcpus: int, ram_gib: int) -> None:
        zone, server_id = self._target(backend_id)
        settings = self._zone(zone)
        conn = self._connection(zone)
        with self._cloud("resize server", conn, server_id):
            target = lookups.find_flavor(conn, self._mapping("flavors", settings), flavor)
            server = self._fetch(conn, server_id)
            state = server_state(server.status or "", server.task_state)
            if state == B.RESIZING or (state == B.STOPPED and self._flavor_code(settings, server) == flavor):
                return  # submitted before, or already that size: repeating changes nothing
            if state != B.STOPPED:
                # Nova could resize a running server, but the portal (like every backend) asks for a
                # stop first, so the customer chooses when the server goes down.
                raise Rejected(
                    "Stop the server before resizing it.", f"resize {backend_id}: server is {server.status}"
                )

        def resize(conn, sid) -> None:
            conn.compute.resize_server(sid, target.id)

        self._action(backend_id, "resized", resize, fine={B.RESIZING})

    def rebuild_server(self, backend_id: str, *, image_ref: str, rebuild_key: str) -> None:
        """Nova's rebuild (`POST /servers/{id}/action {"rebuild": {"imageRef": …}}`), with the
        server's metadata plus the rebuild's key (a rebuild replaces the metadata it is given).
        Nova shows REBUILD, then ACTIVE, or SHUTOFF again for a server that was stopped."""
        zone, server_id = self._target(backend_id)
        conn = self._connection(zone)
        if Capability.SERVER_REBUILD not in self.capabilities(zone):
            raise not_available(Capability.SERVER_REBUILD, zone)
        with self._cloud("rebuild server", conn, server_id):
            server = self._fetch(conn, server_id)
            metadata = dict(server.metadata or {})
            if metadata.get(REBUILD_METADATA_KEY) == rebuild_key:
                return  # asked before: under way or done
            state = server_state(server.status or "", server.task_state)
            if state not in (B.RUNNING, B.STOPPED) or server.task_state:
                raise Rejected(
                    f"The server is {IS_DOING[state]} right now, so its disk can't be restored. "
                    "Try again once it has settled.",
                    f"rebuild {backend_id}: {server.status} ({server.task_state})",
                )
            try:
                conn.compute.rebuild_server(
                    server_id, image_ref, metadata={**metadata, REBUILD_METADATA_KEY: rebuild_key}
                )
            except sdk_exceptions.ConflictException as conflict:
                if (self._fetch(conn, server_id).metadata or {}).get(REBUILD_METADATA_KEY) == rebuild_key:
                    return  # a racing request of ours got there first
                raise Rejected(
                    "The server is busy right now, so its disk can't be restored. Try again once it has settled.",
                    f"rebuild {backend_id}: {error_text(conflict)}",
                ) from None
            except sdk_exceptions.BadRequestException as refusal:
                text = error_text(refusal)
                message = (
                    "That image needs a larger disk than this server's size has."
                    if "disk" in text.lower()
                    else "That snapshot or image is not available in this zone."
                )
                raise Rejected(message, f"rebuild {backend_id}: {text}") from None

    def delete_server(self, backend_id: str) -> None:
        zone, server_id = self._target(backend_id)
        conn = self._connection(zone)
        with self._cloud("delete server", conn, server_id):
            try:
                conn.compute.delete_server(server_id, ignore_missing=False)
            except sdk_exceptions.NotFoundException as error:
                if not server_is_gone(error, server_id):
                    raise  # a missing route or a wrong endpoint has deleted nothing

    def capabilities(self, zone: str) -> set[Capability]:
        """FIREWALL needs Neutron's `security-group` extension; LARGE_ROOT_DISK (the root disk is
        then a volume), VOLUMES, VOLUME_EXTEND and VOLUME_SNAPSHOTS a Cinder (`block-storage`) in the
        catalog; SERVER_SNAPSHOTS a Glance (`image`). Asked once per cloud and region every
        CAPABILITIES_SECONDS: one call to Neutron, the catalog is already at hand. SERIAL_CONSOLE
        and GRAPHICAL_CONSOLE only where the zone's settings say `serial_console` / `graphical_console`
        (Nova does not tell; openstack_console);
        RESCUE, PASSWORD_RESET unless they say false (`rescue`, `password_reset`; openstack_rescue, _password)."""
        settings = self._zone(zone)
        key = self._key(settings)
        configured = {kind.capability for kind in CONSOLE_KINDS.values() if settings.get(kind.setting)}
        for optional in (Capability.RESCUE, Capability.PASSWORD_RESET):  # on unless set to false
            configured |= set() if settings.get(optional.value) is False else {optional}
        with self._lock:
            expires, known = self._capabilities.get(key, (0.0, frozenset()))
        if expires > time.monotonic():
            return set(known) | configured
        conn = self._connection(zone)
        found = {Capability.FIREWALL, Capability.PRIVATE_NETWORKS, *CINDER_CAPABILITIES, *GLANCE_CAPABILITIES}
        with self._cloud("capabilities", conn):
            if "security-group" not in {extension.alias for extension in conn.network.extensions()}:
                found.discard(Capability.FIREWALL)
            if not conn.has_service("block-storage"):
                found -= CINDER_CAPABILITIES
            if not conn.has_service("image"):
                found -= GLANCE_CAPABILITIES
        with self._lock:
            self._capabilities[key] = (time.monotonic() + CAPABILITIES_SECONDS, frozenset(found))
        return found | configured

    def check_health(self, zone: str) -> str:
        settings = self._zone(zone)
        conn = self._connection(zone)
        with self._cloud("health check", conn):
            conn.authorize()
            flavors = sum(1 for _ in conn.compute.flavors(details=False))
        capacity, notes = self._capacity(zone)
        capabilities = self.capabilities(zone)
        if Capability.FIREWALL not in capabilities:
            notes.append(
                "no security groups: firewall rules are not applied in this zone "
                "(launches that ask for them are refused)"
            )
        if Capability.LARGE_ROOT_DISK not in capabilities:
            notes.append("no Cinder: a root disk can be no larger than its flavor's disk, and no volumes")
        if Capability.SERVER_SNAPSHOTS not in capabilities:
            notes.append("no Glance: no server snapshots")
        where = (
            settings.get("cloud") or urlsplit(conn.config.config.get("auth", {}).get("auth_url", "")).hostname
        )
        region = settings.get("region") or conn.config.get_region_name() or "default region"
        return "; ".join(
            [
                f"Signed in to {where} ({region})",
                f"{flavors} flavors",
                f"{capacity.free_vcpus} vCPUs and {capacity.free_ram_gib} GiB RAM free",
                *notes,
            ]
        )

    def console_output(self, backend_id: str) -> str:
        zone, server_id = self._target(backend_id)
        conn = self._connection(zone)
        lines = int(self.options.get("console_lines", 100))
        with self._cloud("console output", conn, server_id):
            try:
                answer = conn.compute.get_server_console_output(server_id, length=lines)
            except sdk_exceptions.ConflictException:
                return ""  # not ready yet (still building)
        return str(answer.get("output") or "")

    # cpu_samples: the default (none). Nova has no CPU history; that would take Gnocchi/Aodh or
    # Prometheus, which few public clouds expose to projects.
