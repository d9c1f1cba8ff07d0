"""The one interface between the portal and a cloud.

Calls submit and return: `create_server` answers with an id while the server still builds, and
the caller polls `get_server` later (a Celery task re-schedules itself; nobody sleeps in a worker).
Errors come in three kinds: `Transient` (try again later), `Rejected` (permanent, with a message
for the customer) and `NotFound`.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.conf import settings
from django.utils.module_loading import import_string

from portal.compute.backends.console import ConsoleStream, RemoteConsole
from portal.compute.backends.networks import NetworkSpec, NetworkState
from portal.compute.backends.storage import (
    SnapshotCopySpec,
    SnapshotSpec,
    SnapshotState,
    VolumeSpec,
    VolumeState,
)

# Metadata key that carries the portal's instance UUID on every server we create.
IDEMPOTENCY_METADATA_KEY = "portal-instance-id"
# Metadata key of a rebuilt server: the key (operation UUID) of the last rebuild it was asked for.
REBUILD_METADATA_KEY = "portal-rebuild-id"


class BackendError(Exception):
    def __init__(self, user_message: str, detail: str = "") -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.detail = detail or user_message


class Transient(BackendError):
    """The cloud could not answer now (timeout, 5xx, lock): the same call may succeed later."""


class Rejected(BackendError):
    """The cloud refused for good (no capacity, invalid request); `user_message` says why."""


class NotFound(BackendError):
    pass


class BackendState(StrEnum):
    BUILDING = "building"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    STARTING = "starting"
    REBOOTING = "rebooting"
    RESIZING = "resizing"
    REBUILDING = "rebuilding"  # its root disk is being replaced by an image's (rebuild_server)
    RESCUING = "rescuing"  # booting the rescue system (rescue_server)
    RESCUE = "rescue"  # running the rescue system, its own disk attached as a second one
    UNRESCUING = "unrescuing"  # leaving rescue: booting from its own disk again (unrescue_server)
    DELETING = "deleting"
    ERROR = "error"


class Capability(StrEnum):
    """What a zone's cloud does beyond running servers. Views, the API and the launch wizard ask
    `ComputeBackend.capabilities(zone)` before offering one, so nothing is on screen that the cloud
    does not do; a backend drops what a zone cannot do and refuses a request that needs it."""

    FIREWALL = "firewall"  # the server's inbound firewall rules are enforced by the cloud
    LARGE_ROOT_DISK = "large_root_disk"  # a root disk larger than the size's own disk
    VOLUMES = "volumes"  # volumes are created, attached to and detached from servers, deleted
    VOLUME_EXTEND = "volume_extend"  # a volume grows
    SERVER_SNAPSHOTS = "server_snapshots"  # a server's disk becomes an image new servers boot from
    VOLUME_SNAPSHOTS = "volume_snapshots"  # a volume's content is kept, and new volumes made of it
    # a server snapshot (an image) is copied into this zone from another zone of the same cloud
    IMAGE_COPY = "image_copy"
    SERVER_REBUILD = "server_rebuild"  # a server's root disk is replaced by a snapshot's (rebuild_server)
    SERIAL_CONSOLE = "serial_console"  # an interactive serial console, relayed by the portal (console.py)
    GRAPHICAL_CONSOLE = "graphical_console"  # a graphical console: the cloud's page, or relayed (console.py)
    RESCUE = "rescue"  # the server boots a rescue system with its own disk attached (rescue_server)
    # the cloud sets a user's password in the running guest (set_password)
    PASSWORD_RESET = "password_reset"  # noqa: S105 (a name, not a password)
    # the server is given the addresses the portal's pools assign (ServerSpec.addresses; portal/ipam)
    OPERATOR_ADDRESSES = "operator_addresses"
    PRIVATE_NETWORKS = "private_networks"  # a project's own networks, servers attached (networks.py)


# What the customer reads when a zone cannot do something: "<name> are not available in <zone>".
CAPABILITY_NAMES = {
    Capability.FIREWALL: "Firewall rules",
    Capability.LARGE_ROOT_DISK: "Root disks larger than the size's disk",
    Capability.VOLUMES: "Volumes",
    Capability.VOLUME_EXTEND: "Larger volumes",
    Capability.SERVER_SNAPSHOTS: "Server snapshots",
    Capability.VOLUME_SNAPSHOTS: "Volume snapshots",
    Capability.IMAGE_COPY: "Image copies between regions",
    Capability.SERVER_REBUILD: "Restoring a server's disk from a snapshot or backup",
    Capability.SERIAL_CONSOLE: "Interactive serial consoles",
    Capability.GRAPHICAL_CONSOLE: "The cloud's graphical consoles",
    Capability.RESCUE: "Rescue mode",
    Capability.PASSWORD_RESET: "Root password reset",
    Capability.OPERATOR_ADDRESSES: "Addresses from the operator's pools",
    Capability.PRIVATE_NETWORKS: "Private networks",
}


def not_available(capability: Capability, zone: str) -> Rejected:
    name = CAPABILITY_NAMES[capability]
    singular = (Capability.SERVER_REBUILD, Capability.RESCUE, Capability.PASSWORD_RESET)
    verb = "is" if capability in singular else "are"  # singular
    return Rejected(f"{name} {verb} not available in {zone}.")


@dataclass(frozen=True)
class ServerSpec:
    idempotency_key: str  # the instance's UUID; stored as server metadata
    name: str
    zone: str
    flavor: str
    vcpus: int
    ram_gib: int
    root_disk_gib: int
    image: str
    ssh_keys: tuple[str, ...] = ()
    user_data: str = ""
    firewall_rules: tuple[dict, ...] = ()
    image_backend_id: str = ""  # boot this image of the cloud's (a server snapshot) instead of `image`
    # The addresses the portal's pools assigned (one IPv4, one IPv6 at most): given only to a zone
    # that declares Capability.OPERATOR_ADDRESSES; empty: the cloud picks.
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerState:
    backend_id: str
    state: BackendState
    addresses: tuple[str, ...] = ()
    fault: str = ""
    flavor: str = ""
    idempotency_key: str = ""
    name: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ZoneCapacity:
    free_vcpus: int
    free_ram_gib: int


class ComputeBackend(ABC):
    # How many servers' steps one task takes at a time (`create_servers`, `get_servers`). 1 keeps
    # each server's slow calls in a task of its own, in parallel with the others; a cloud whose
    # bulk calls are cheap raises it.
    batch_size = 1

    def __init__(self, name: str, **options) -> None:
        self.name = name
        self.options = options

    @abstractmethod
    def create_server(self, spec: ServerSpec) -> ServerState: ...

    @abstractmethod
    def get_server(self, backend_id: str) -> ServerState: ...

    @abstractmethod
    def find_server(self, zone: str, idempotency_key: str) -> ServerState | None:
        """The server created with this key, if any (to adopt it instead of creating a second)."""

    @abstractmethod
    def list_servers(self, zone: str) -> list[ServerState]:
        """Servers in the zone that carry our metadata (for drift and orphan checks)."""

    @abstractmethod
    def start_server(self, backend_id: str) -> None: ...

    @abstractmethod
    def stop_server(self, backend_id: str) -> None: ...

    @abstractmethod
    def reboot_server(self, backend_id: str, *, hard: bool = False) -> None: ...

    @abstractmethod
    def resize_server(self, backend_id: str, *, flavor: str, vcpus: int, ram_gib: int) -> None: ...

    @abstractmethod
    def delete_server(self, backend_id: str) -> None:
        """Delete; deleting a server that is already gone is not an error."""

    @abstractmethod
    def zone_capacity(self, zone: str) -> ZoneCapacity: ...

    # --- several servers at once (one launch of many): a cloud with bulk calls overrides these ---

    def create_servers(self, specs: Sequence[ServerSpec]) -> list[ServerState | BackendError]:
        """Create each server unless one with its idempotency key exists (then adopt that one).

        One result per spec, in order: its server, or the error for that server alone (one server's
        failure does not fail the others)."""
        results: list[ServerState | BackendError] = []
        for spec in specs:
            try:
                results.append(self.find_server(spec.zone, spec.idempotency_key) or self.create_server(spec))
            except BackendError as error:
                results.append(error)
        return results

    def get_servers(self, backend_ids: Sequence[str]) -> list[ServerState | BackendError]:
        """`get_server` for each id, in order; a server's error is its result."""
        results: list[ServerState | BackendError] = []
        for backend_id in backend_ids:
            try:
                results.append(self.get_server(backend_id))
            except BackendError as error:
                results.append(error)
        return results

    def zone_settings(self, zone: str) -> dict:
        """How this backend reaches `zone`: `OPTIONS["zones"][zone]` from settings, overlaid by what
        an operator set on the zone in admin (`Zone.backend_settings`). Never holds a secret itself:
        secrets are named here (an environment variable or a file) and read where they are used."""
        from portal.catalog.models import Zone

        configured = dict(self.options.get("zones", {}).get(zone, {}))
        stored = Zone.objects.filter(code=zone).values_list("backend_settings", flat=True).first()
        configured.update(stored or {})
        return configured

    def capabilities(self, zone: str) -> set[Capability]:
        """What `zone` can do: nothing beyond servers unless the backend declares it. Cheap enough
        to ask on every page: a backend that has to ask its cloud keeps the answer for a while.
        Raises BackendError, like any call, when the cloud cannot be asked."""
        return set()

    # --- storage (storage.py): a backend declares Capability.VOLUMES etc. and overrides these ---

    def create_volume(self, spec: VolumeSpec) -> VolumeState:
        raise not_available(Capability.VOLUMES, spec.zone)

    def get_volume(self, backend_id: str) -> VolumeState:
        raise NotFound(f"No volume {backend_id}.")

    def find_volume(self, zone: str, idempotency_key: str) -> VolumeState | None:
        """The volume created with this key, if any (to adopt it instead of creating a second)."""
        return None

    def list_volumes(self, zone: str) -> list[VolumeState]:
        """Volumes in the zone that carry our metadata (for drift and orphan checks)."""
        return []

    def attach_volume(self, backend_id: str, server_id: str) -> None:
        """Attach to a server, running (hot plug) or stopped; returns while it may still attach."""
        raise Rejected("Volumes are not available in this zone.")

    def detach_volume(self, backend_id: str, server_id: str) -> None:
        """Detach; a volume that is not attached to that server is not an error."""
        raise Rejected("Volumes are not available in this zone.")

    def extend_volume(self, backend_id: str, size_gib: int) -> None:
        raise Rejected("Larger volumes are not available in this zone.")

    def delete_volume(self, backend_id: str) -> None:
        """Delete; deleting a volume that is already gone is not an error."""
        raise Rejected("Volumes are not available in this zone.")

    def create_snapshot(self, spec: SnapshotSpec) -> SnapshotState:
        capability = Capability.SERVER_SNAPSHOTS if spec.source == "server" else Capability.VOLUME_SNAPSHOTS
        raise not_available(capability, spec.zone)

    def get_snapshot(self, backend_id: str) -> SnapshotState:
        raise NotFound(f"No snapshot {backend_id}.")

    def find_snapshot(self, zone: str, idempotency_key: str) -> SnapshotState | None:
        return None

    def list_snapshots(self, zone: str) -> list[SnapshotState]:
        return []

    def delete_snapshot(self, backend_id: str) -> None:
        """Delete; deleting a snapshot that is already gone is not an error."""
        raise Rejected("Snapshots are not available in this zone.")

    def copy_snapshot(self, spec: SnapshotCopySpec) -> SnapshotState:
        """Copy a server snapshot (an image) into `spec.zone`, another zone of this cloud whose
        capabilities and the source zone's both hold IMAGE_COPY. Answers the copy, a snapshot of
        its own in `spec.zone` (polled with `get_snapshot`, deleted with `delete_snapshot`); a
        repeated call with the same key adopts the first copy (`find_snapshot(spec.zone, key)`).
        Rejected when the source is not an available server snapshot, or already in that zone."""
        raise not_available(Capability.IMAGE_COPY, spec.zone)

    def rebuild_server(self, backend_id: str, *, image_ref: str, rebuild_key: str) -> None:
        """Replace the server's root disk by a fresh one made of `image_ref` (the cloud's id of a
        server snapshot or image, as `ServerSpec.image_backend_id`); everything written to the disk
        since is lost. A running server is powered off for it and started again; a stopped one
        stays stopped. Submits and returns: the server shows `REBUILDING` (or settles at once) and
        then its state before. Idempotent by `rebuild_key` (the operation's UUID), which the server
        carries in its metadata (`REBUILD_METADATA_KEY`) from then on: the same key again changes
        nothing. Rejected when the server is doing something else or the image does not fit."""
        raise Rejected("Restoring a server's disk from a snapshot or backup is not available in this zone.")

    # --- rescue (Capability.RESCUE): a backend that declares it overrides these ---

    def rescue_server(self, backend_id: str) -> None:
        """Boot the server from the operator's rescue system with its own disk attached as a second
        disk (nothing on it is changed), from running or stopped. Submits and returns: the server
        shows `RESCUING`, then `RESCUE`. Asking again while rescuing or in rescue changes nothing;
        Rejected when the server is doing something else."""
        raise Rejected("Rescue mode is not available in this zone.")

    def unrescue_server(self, backend_id: str) -> None:
        """Leave rescue: boot from its own disk again. Submits and returns: `UNRESCUING`, then
        `RUNNING`. Asking again while leaving changes nothing; Rejected when not in rescue."""
        raise Rejected("Rescue mode is not available in this zone.")

    # --- password reset (Capability.PASSWORD_RESET): a backend that declares it overrides this ---

    def set_password(self, backend_id: str, user: str, password: str) -> None:
        """Set `user`'s password inside the running guest (the cloud's agent in it does the work);
        the old one stops working. Returns once the cloud says it is done. Rejected when the server
        is not running or the guest cannot take it (no agent); never logs or keeps `password`."""
        raise not_available(Capability.PASSWORD_RESET, "this zone")

    def absent_reason(self, zone: str, capability: Capability) -> str:
        """Why `zone` has no `capability`, in the customer's words, beyond "… is not available"
        ("" when there is nothing more to say, e.g. the zone's settings turned it off)."""
        return ""

    # --- firewalls (Capability.FIREWALL): a backend that declares it overrides these ---

    def apply_firewall(self, backend_id: str, rules: tuple[dict, ...]) -> None:
        """Make the inbound rules the cloud enforces for this server exactly `rules` (the shape of
        `ServerSpec.firewall_rules`: protocol, port_from, port_to, source, described in firewall.py;
        protocol "any" allows every protocol; `()` drops all inbound traffic), on a running or a
        stopped server. A rule the cloud cannot take is Rejected and nothing changes. Idempotent: the same rules again change
        nothing. Returns once the cloud enforces them; raises BackendError like any call."""
        raise Rejected("Firewall rules are not available in this zone.")

    def server_firewall(self, backend_id: str) -> tuple[dict, ...] | None:
        """The inbound rules the cloud enforces for this server now, in the shape `apply_firewall`
        takes (for drift checks), or None when the cloud holds no portal rules for it."""
        return None

    # --- private networks (networks.py): a backend declares PRIVATE_NETWORKS and overrides these ---

    def create_network(self, spec: NetworkSpec) -> NetworkState:
        """A network with one subnet of `spec.cidr`; submits and returns (poll `get_network`)."""
        raise not_available(Capability.PRIVATE_NETWORKS, spec.zone)

    def get_network(self, backend_id: str) -> NetworkState:
        raise NotFound(f"No network {backend_id}.")

    def find_network(self, zone: str, idempotency_key: str) -> NetworkState | None:
        """The network created with this key, if any (to adopt it instead of creating a second)."""
        return None

    def list_networks(self, zone: str) -> list[NetworkState]:
        """Networks in the zone made by the portal (for drift and orphan checks)."""
        return []

    def attach_network(self, backend_id: str, server_id: str) -> None:
        """Give the server (running or stopped, in the network's zone) a port on the network, with
        an address the cloud allocates inside the CIDR. Idempotent: a server already attached
        keeps its port. Returns while it may still attach (`get_network().ports` tells)."""
        raise Rejected("Private networks are not available in this zone.")

    def detach_network(self, backend_id: str, server_id: str) -> None:
        """Remove the server's port; a server that is not attached is not an error."""
        raise Rejected("Private networks are not available in this zone.")

    def delete_network(self, backend_id: str) -> None:
        """Delete; Rejected while a server is attached (as Neutron's 409 "in use"); a network
        that is already gone is not an error."""
        raise Rejected("Private networks are not available in this zone.")

    def check_health(self, zone: str) -> str:
        """One line on how the zone's cloud answers ("2 hosts, 14 GiB free"); raises BackendError
        with the reason when it does not. Shown to operators in admin."""
        capacity = self.zone_capacity(zone)
        return f"{capacity.free_vcpus} vCPUs and {capacity.free_ram_gib} GiB RAM free"

    def console_output(self, backend_id: str) -> str:
        """The tail of the server's serial console, for the customer's detail page ("" when the
        cloud does not expose it)."""
        return ""

    # --- consoles (console.py): a backend declares SERIAL_CONSOLE / GRAPHICAL_CONSOLE and overrides ---

    def open_serial_console(self, backend_id: str) -> ConsoleStream:
        """A stream to the server's serial console (the server must be running); raises
        BackendError like any call: Rejected with the reason when it can't be had now."""
        raise Rejected("Interactive serial consoles are not available in this zone.")

    # GRAPHICAL_CONSOLE is either the cloud's own console page (`remote_console`, linked to) or,
    # where this is True, a display the portal relays itself (`open_graphical_console`).
    RELAYS_GRAPHICAL_CONSOLE = False

    def open_graphical_console(self, backend_id: str) -> ConsoleStream:
        """A stream to the server's display (RFB bytes, for the portal's noVNC); raises
        Rejected/NotFound/Transient like `open_serial_console`."""
        raise Rejected("The cloud's graphical consoles are not available in this zone.")

    def remote_console(self, backend_id: str) -> RemoteConsole:
        """The address of the cloud's own console for this server, valid for a short while."""
        raise Rejected("The cloud's graphical consoles are not available in this zone.")

    def cpu_samples(self, backend_id: str, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        """CPU utilisation (percent of the server's vCPUs) between start and end, oldest first.

        Not every cloud reports metrics: the default is none, and the detail page says so.
        """
        return []


@functools.cache
def get_backend(name: str) -> ComputeBackend:
    try:
        config = settings.COMPUTE_BACKENDS[name]
    except KeyError:
        raise Rejected(
            "This zone is not connected to a cloud right now. Please choose another zone.",
            f"No COMPUTE_BACKENDS entry named {name!r}",
        ) from None
    return import_string(config["CLASS"])(name, **config.get("OPTIONS", {}))
