"""libvirt/KVM: servers are libvirt domains on the zone's hosts (docs/backends/libvirt.md).

A zone lists its hosts as libvirt URIs (`qemu+ssh://kvm1/system`). A server is a domain whose UUID
is the portal instance's UUID, named `portal-<uuid>`, with the portal's facts (instance id, zone,
flavor, image, where its files are) in `<metadata>` under our own XML namespace: that is how
`find_server` adopts a server created before a crash and how `list_servers` tells ours from the
host's other domains. Its root disk is a qcow2 overlay on an image from the image store, its
cloud-init NoCloud seed a small ISO, its serial console goes to a log file.

Every call submits and returns: `stop_server` presses the ACPI power button and notes a deadline in
the domain's live metadata; the next `get_server` after the deadline pulls the plug.

This module decides (configuration, placement, disks, ids); the rest is in three others:
`libvirt_xml` writes the definitions and the seed, `libvirt_connection` reaches a host (a kept
connection to a daemon, or a helper process for the embedded driver), and `libvirt_host` is what
runs against the host's libvirt connection. Storage, the graphical console, rescue mode and password reset
are mixins of their own (libvirt_storage, libvirt_display, libvirt_rescue, libvirt_password).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from portal.compute.backends.base import (
    IDEMPOTENCY_METADATA_KEY,
    REBUILD_METADATA_KEY,
    BackendState,
    Capability,
    ComputeBackend,
    NotFound,
    Rejected,
    ServerSpec,
    ServerState,
    Transient,
    ZoneCapacity,
    not_available,
)
from portal.compute.backends.console import ConsoleClosed, ConsoleStream
from portal.compute.backends.libvirt_connection import HostConnections, host_key
from portal.compute.backends.libvirt_console import ConsoleEnded
from portal.compute.backends.libvirt_display import LibvirtDisplay
from portal.compute.backends.libvirt_host import HostError, embedded_root
from portal.compute.backends.libvirt_password import LibvirtPassword
from portal.compute.backends.libvirt_rescue import LibvirtRescue
from portal.compute.backends.libvirt_storage import LibvirtStorage
from portal.compute.backends.libvirt_xml import (
    Disks,
    build_seed_iso,
    create_overlay,
    domain_xml,
    root_volume_xml,
    run_tool,
    seed_files,
    seed_volume_xml,
)

DEFAULTS = {
    "domain_type": "kvm",
    "machine": "",
    "stop_timeout_seconds": 60,
    "ram_mib_per_gib": 1024,
    "max_ram_mib": 0,
    "reserved_ram_mib": 0,
    "cpu_allocation_ratio": 1.0,
    "cmdline": "console=ttyS0 root=/dev/vda1 ro",
    "console_log_dir": "/var/log/libvirt/qemu",
    "images": {},
}
INSTANCE_NAMESPACE = uuid.UUID("0b3a8f46-5a43-4c39-9a0e-2f6d2a8b1c55")


def domain_uuid_for(idempotency_key: str) -> str:
    """The instance's UUID is the domain's; any other key maps to a stable UUID of its own."""
    try:
        return str(uuid.UUID(idempotency_key))
    except ValueError:
        return str(uuid.uuid5(INSTANCE_NAMESPACE, idempotency_key))


def agent_socket_for(uri: str, domain_uuid: str) -> str:
    """The guest agent's socket: libvirt's own choice on a daemon; under an embedded driver's root
    one of ours, since libvirt's (root/lib/qemu/channel/target/domain-N-name/…) can outgrow the
    108 characters a socket's path may have."""
    root = embedded_root(uri)
    return f"{root.rstrip('/')}/lib/qemu/{domain_uuid}.qga" if root else ""


class LibvirtBackend(LibvirtDisplay, LibvirtStorage, LibvirtRescue, LibvirtPassword, ComputeBackend):
    def __init__(self, name: str, **options) -> None:
        super().__init__(name, **options)
        self.hosts = HostConnections()

    def capabilities(self, zone: str) -> set[Capability]:
        """Root disks of any size, the serial console (virDomainOpenConsole), the graphical console
        (the domain's VNC display, libvirt_display), volumes and snapshots where disks are files
        (libvirt_storage), rescue mode where the zone names a rescue kernel and initramfs
        (libvirt_rescue), root password reset through the guest agent unless the zone says
        `"password_reset": false` (libvirt_password); firewall rules are not enforced on a libvirt
        host (yet)."""
        kinds = {Capability.LARGE_ROOT_DISK, Capability.SERIAL_CONSOLE} | self._rescue_capabilities(zone)
        kinds |= self._password_capabilities(zone)
        return kinds | self._display_capabilities(zone) | self._storage_capabilities(zone)

    def absent_reason(self, zone: str, capability: Capability) -> str:
        # Setting a guest's password (virDomainSetUserPassword) goes through the QEMU guest agent;
        # a zone whose images run none says so (`"password_reset": false`).
        if capability == Capability.PASSWORD_RESET:
            return (
                "Password reset needs the QEMU guest agent, which this zone's images do not run; "
                "use the console instead (rescue mode where the zone has it)."
            )
        if capability == Capability.RESCUE:
            return "The zone's operator has not set up a rescue system here."
        return ""

    # --- configuration -----------------------------------------------------------------------

    def _config(self, zone: str) -> dict:
        config = DEFAULTS | {key: value for key, value in self.options.items() if key != "zones"}
        config |= self.zone_settings(zone)
        hosts = config.get("hosts") or []
        if isinstance(hosts, str):
            hosts = [hosts]
        if not hosts:
            raise Transient(
                "This zone is not connected to a cloud right now.",
                f"libvirt zone {zone} has no hosts configured",
            )
        config["hosts"] = list(hosts)
        return config

    def _memory_mib(self, config: dict, ram_gib: int) -> int:
        memory = int(ram_gib * float(config["ram_mib_per_gib"]))
        if config["max_ram_mib"]:
            memory = min(memory, int(config["max_ram_mib"]))
        return max(memory, 64)

    def _run_as(self, config: dict) -> str | None:
        return config.get("embed_user") or None

    # --- reaching hosts ------------------------------------------------------------------------

    def _host(self, config: dict, uri: str, op: str, **args):
        """Run one host operation; HostError becomes Transient, Rejected or NotFound."""
        try:
            return self.hosts.run(uri, op, args, run_as=self._run_as(config))
        except HostError as error:
            kind = {"transient": Transient, "rejected": Rejected, "not_found": NotFound}[error.kind]
            raise kind(error.message, error.detail) from None

    # --- finding servers -------------------------------------------------------------------------

    def _parse_id(self, backend_id: str) -> tuple[str, str, str]:
        zone, _, rest = backend_id.partition("/")
        host, _, domain_uuid = rest.rpartition("/")
        try:
            uuid.UUID(domain_uuid)
        except ValueError:
            raise NotFound(
                "The server no longer exists in the cloud.", f"not a libvirt server id: {backend_id!r}"
            ) from None
        return zone, host, domain_uuid

    def _status(self, config: dict, uri: str, domain_uuid: str) -> dict | None:
        network = config.get("network") or ""
        if embedded_root(uri):
            source = ""  # no network daemon to ask
        elif config.get("bridge"):
            source = "arp"
        else:
            source = "lease" if network not in ("", "user", "none") else ""
        return self._host(
            config, uri, "status", domain_uuid=domain_uuid, now=time.time(), address_source=source
        )

    def _hosts_hinted(self, config: dict, host: str) -> list[str]:
        hosts = config["hosts"]
        return sorted(hosts, key=lambda uri: host_key(uri) != host)

    def _state(self, zone: str, uri: str, summary: dict) -> ServerState:
        meta = summary["meta"]
        key = meta.get("instance-id", "")
        return ServerState(
            backend_id=f"{zone}/{host_key(uri)}/{summary['uuid']}",
            state=BackendState(summary["state"]),
            addresses=tuple(summary.get("addresses") or ()),
            fault=summary["fault"],
            flavor=meta.get("flavor", ""),
            idempotency_key=key,
            name=meta.get("name", ""),
            metadata={
                IDEMPOTENCY_METADATA_KEY: key,
                REBUILD_METADATA_KEY: meta.get("rebuild-id", ""),
                "host": host_key(uri),
                "domain": summary["name"],
            },
        )

    def _locate(self, backend_id: str) -> tuple[dict, str, str, dict]:
        """(zone config, host URI, domain UUID, status) of a server; NotFound only when every host
        answered and none has it (it may have moved between the zone's hosts)."""
        zone, host, domain_uuid = self._parse_id(backend_id)
        config = self._config(zone)
        unreachable = []
        for uri in self._hosts_hinted(config, host):
            try:
                summary = self._status(config, uri, domain_uuid)
            except Transient as error:
                unreachable.append(error)
                continue
            if summary is not None and summary["meta"]:
                return config, uri, domain_uuid, summary
        if unreachable:
            raise unreachable[0]
        raise NotFound("The server no longer exists in the cloud.", f"no domain {domain_uuid} in zone {zone}")

    def get_server(self, backend_id: str) -> ServerState:
        _config, uri, _domain_uuid, summary = self._locate(backend_id)
        zone = self._parse_id(backend_id)[0]
        return self._state(zone, uri, summary)

    def find_server(self, zone: str, idempotency_key: str) -> ServerState | None:
        config = self._config(zone)
        domain_uuid = domain_uuid_for(idempotency_key)
        unreachable = []
        for uri in config["hosts"]:
            try:
                summary = self._status(config, uri, domain_uuid)
            except Transient as error:
                unreachable.append(error)
                continue
            if summary is not None and summary["meta"].get("instance-id") == idempotency_key:
                return self._state(zone, uri, summary)
        if unreachable:
            # It may be on the host that did not answer: "none" now could create a second one.
            raise unreachable[0]
        return None

    def _surveys(self, config: dict, *, all_hosts: bool) -> list[tuple[str, dict]]:
        surveys, failures = [], []
        for uri in config["hosts"]:
            try:
                surveys.append((uri, self._host(config, uri, "survey")))
            except Transient as error:
                failures.append(error)
        if failures and (all_hosts or not surveys):
            raise failures[0]
        return surveys

    def list_servers(self, zone: str) -> list[ServerState]:
        config = self._config(zone)
        servers = []
        for uri, survey in self._surveys(config, all_hosts=True):
            for summary in survey["domains"]:
                if summary["meta"].get("zone") == zone and summary["meta"].get("instance-id"):
                    servers.append(self._state(zone, uri, summary))
        return servers

    # --- capacity --------------------------------------------------------------------------------

    def _free(self, config: dict, survey: dict) -> tuple[int, int]:
        """Free (vCPUs, MiB) on a host: its size minus every domain defined on it (a stopped server
        keeps its place), and never more memory than the host reports free."""
        vcpus = int(survey["cpus"] * float(config["cpu_allocation_ratio"]))
        memory = survey["memory_mib"] - int(config["reserved_ram_mib"])
        for domain in survey["domains"]:
            vcpus -= domain["vcpus"]
            memory -= domain["memory_mib"]
        if survey["free_mib"] is not None:
            memory = min(memory, survey["free_mib"] - int(config["reserved_ram_mib"]))
        return max(vcpus, 0), max(memory, 0)

    def zone_capacity(self, zone: str) -> ZoneCapacity:
        config = self._config(zone)
        vcpus = memory = 0
        for _uri, survey in self._surveys(config, all_hosts=False):
            free_vcpus, free_mib = self._free(config, survey)
            vcpus += free_vcpus
            memory += free_mib
        return ZoneCapacity(free_vcpus=vcpus, free_ram_gib=int(memory // float(config["ram_mib_per_gib"])))

    def check_health(self, zone: str) -> str:
        config = self._config(zone)
        surveys = self._surveys(config, all_hosts=True)
        vcpus = memory = servers = 0
        for _uri, survey in surveys:
            free_vcpus, free_mib = self._free(config, survey)
            vcpus, memory = vcpus + free_vcpus, memory + free_mib
            servers += sum(1 for domain in survey["domains"] if domain["meta"].get("zone") == zone)
        hosts = f"{len(surveys)} host{'s' if len(surveys) != 1 else ''}"
        return f"{hosts}, {servers} servers, {vcpus} vCPUs and {memory / 1024:.1f} GiB RAM free"

    # --- creating --------------------------------------------------------------------------------

    def _image_path(self, config: dict, image: str) -> str:
        images = config["images"]
        name = images.get(image) or f"{re.sub(r'[^a-z0-9.]+', '-', image.lower()).strip('-')}.qcow2"
        store = config.get("image_store", "")
        return name if os.path.isabs(name) else os.path.join(store, name)

    def _disk_dir(self, config: dict, uri: str) -> Path | None:
        if config.get("storage_pool"):
            return None
        if config.get("disk_dir"):
            return Path(config["disk_dir"])
        root = embedded_root(uri)
        if root:
            return Path(root) / "disks"
        raise Rejected(
            "This zone can't create servers right now.",
            f"libvirt zone needs disk_dir (a directory the hosts and the portal share) or storage_pool for {uri}",
        )

    def _place(self, config: dict, spec: ServerSpec, memory_mib: int) -> tuple[str, dict | None]:
        """The host with the most free memory that fits the server, or the host that has it already
        (a concurrent attempt made it since find_server looked) with its summary."""
        best, best_free = None, -1
        domain_uuid = domain_uuid_for(spec.idempotency_key)
        for uri, survey in self._surveys(config, all_hosts=False):
            for domain in survey["domains"]:
                if domain["uuid"] == domain_uuid and domain["meta"]:
                    return uri, domain
            free_vcpus, free_mib = self._free(config, survey)
            if free_vcpus >= spec.vcpus and free_mib >= memory_mib and free_mib > best_free:
                best, best_free = uri, free_mib
        if best is None:
            raise Rejected(
                f"Zone {spec.zone} is sold out for this size right now. Try a smaller size or another zone.",
                f"no host with {spec.vcpus} vCPUs and {memory_mib} MiB free",
            )
        return best, None

    def _file_disks(
        self, config: dict, uri: str, directory: Path, spec: ServerSpec, domain_uuid: str
    ) -> tuple[Disks, str]:
        if spec.image_backend_id:
            image = self._snapshot_image(spec.zone, spec.image_backend_id)
        else:
            image = Path(self._image_path(config, spec.image))
        if not image.is_file():
            raise Rejected(
                f"The image {spec.image} is not available in zone {spec.zone}. Please choose another image.",
                f"no image file {image}",
            )
        info = json.loads(run_tool(["qemu-img", "info", "--output=json", str(image)]))
        fmt, size = info.get("format", "qcow2"), int(info.get("virtual-size", 0))
        wanted = spec.root_disk_gib * 1024**3
        if wanted < size:
            raise Rejected(
                f"The image {spec.image} needs a root disk of at least {-(-size // 1024**3)} GiB.",
                f"{image} is {size} bytes, asked {wanted}",
            )
        server_dir = directory / domain_uuid
        server_dir.mkdir(parents=True, exist_ok=True)
        disks = Disks(
            root=str(server_dir / "root.qcow2"),
            seed=str(server_dir / "seed.iso"),
            console_log=str(server_dir / "console.log"),
            directory=str(server_dir),
        )
        Path(disks.root).unlink(missing_ok=True)
        create_overlay(image, disks.root, wanted, fmt)
        Path(disks.seed).write_bytes(build_seed_iso(seed_files(spec)))
        run_as = self._run_as(config) if embedded_root(uri) else None
        if run_as and os.geteuid() == 0:
            account = pwd.getpwnam(run_as)
            for path in (directory, server_dir, Path(disks.root), Path(disks.seed)):
                os.chown(path, account.pw_uid, account.pw_gid)
        return disks, "qcow2"

    def _pool_disks(self, config: dict, uri: str, spec: ServerSpec, domain_uuid: str) -> tuple[Disks, str]:
        if spec.image_backend_id:
            raise not_available(Capability.SERVER_SNAPSHOTS, spec.zone)
        image = self._image_path(config, spec.image)
        image_format = "raw" if image.endswith((".raw", ".img")) else "qcow2"
        seed = build_seed_iso(seed_files(spec))
        root_xml = root_volume_xml(f"{domain_uuid}-root.qcow2", spec.root_disk_gib, image, image_format)
        seed_xml = seed_volume_xml(f"{domain_uuid}-seed.iso", len(seed))
        try:
            root, seed_path = self._host(
                config,
                uri,
                "create_volumes",
                pool=config["storage_pool"],
                volumes=[
                    {"name": f"{domain_uuid}-root.qcow2", "xml": root_xml},
                    {"name": f"{domain_uuid}-seed.iso", "xml": seed_xml, "upload": seed.hex()},
                ],
            )
        except Rejected as error:
            raise Rejected(
                f"The image {spec.image} is not available in zone {spec.zone}, or its disks could not be made.",
                error.detail,
            ) from None
        log = os.path.join(config["console_log_dir"], f"portal-{domain_uuid}.console.log")
        return Disks(root=root, seed=seed_path, console_log=log, volumes=(root, seed_path)), "qcow2"

    def create_server(self, spec: ServerSpec) -> ServerState:
        existing = self.find_server(spec.zone, spec.idempotency_key)
        if existing is not None:
            return existing
        config = self._config(spec.zone)
        memory_mib = self._memory_mib(config, spec.ram_gib)
        uri, existing = self._place(config, spec, memory_mib)
        if existing is not None:
            return self._state(spec.zone, uri, existing)
        domain_uuid = domain_uuid_for(spec.idempotency_key)
        directory = self._disk_dir(config, uri)
        if directory is None:
            disks, root_format = self._pool_disks(config, uri, spec, domain_uuid)
        else:
            disks, root_format = self._file_disks(config, uri, directory, spec, domain_uuid)
        definition = domain_xml(
            spec=spec,
            domain_uuid=domain_uuid,
            config=config,
            disks=disks,
            memory_mib=memory_mib,
            root_format=root_format,
            agent_socket=agent_socket_for(uri, domain_uuid),
        )
        try:
            summary = self._host(config, uri, "create", domain_uuid=domain_uuid, domain_xml=definition)
        except (Rejected, Transient):
            self._remove_disks(
                config, uri, domain_uuid, {"directory": disks.directory, "volumes": "\n".join(disks.volumes)}
            )
            raise
        return self._state(spec.zone, uri, summary)

    # --- actions ---------------------------------------------------------------------------------

    def start_server(self, backend_id: str) -> None:
        config, uri, domain_uuid, _summary = self._locate(backend_id)
        self._host(config, uri, "start", domain_uuid=domain_uuid)

    def stop_server(self, backend_id: str) -> None:
        config, uri, domain_uuid, _summary = self._locate(backend_id)
        deadline = time.time() + float(config["stop_timeout_seconds"])
        self._host(config, uri, "stop", domain_uuid=domain_uuid, deadline=deadline)

    def reboot_server(self, backend_id: str, *, hard: bool = False) -> None:
        config, uri, domain_uuid, _summary = self._locate(backend_id)
        deadline = time.time() + float(config["stop_timeout_seconds"])
        emulate = bool(embedded_root(uri))
        self._host(
            config, uri, "reboot", domain_uuid=domain_uuid, hard=hard, deadline=deadline, emulate=emulate
        )

    def resize_server(self, backend_id: str, *, flavor: str, vcpus: int, ram_gib: int) -> None:
        config, uri, domain_uuid, summary = self._locate(backend_id)
        if summary["meta"].get("flavor") == flavor and summary["state"] == "stopped":
            return
        if summary["state"] == "stopped":
            survey = self._host(config, uri, "survey")
            free_vcpus, free_mib = self._free(config, survey)
            memory_mib = self._memory_mib(config, ram_gib)
            if vcpus - summary["vcpus"] > free_vcpus or memory_mib - summary["memory_mib"] > free_mib:
                raise Rejected(
                    "This size does not fit on the server's host right now. Try a smaller size.",
                    f"resize to {vcpus} vCPUs/{memory_mib} MiB: host has {free_vcpus} vCPUs/{free_mib} MiB free",
                )
        self._host(
            config,
            uri,
            "resize",
            domain_uuid=domain_uuid,
            vcpus=vcpus,
            memory_mib=self._memory_mib(config, ram_gib),
            flavor=flavor,
        )

    def _remove_disks(self, config: dict, uri: str, domain_uuid: str, meta: dict) -> None:
        directory = meta.get("directory")
        if directory and Path(directory).name == domain_uuid:  # only ever our own per-server directory
            shutil.rmtree(directory, ignore_errors=True)
        volumes = [path for path in (meta.get("volumes") or "").splitlines() if path.strip()]
        if volumes:
            self._host(config, uri, "delete", domain_uuid=domain_uuid, volumes=volumes)

    def delete_server(self, backend_id: str) -> None:
        try:
            config, uri, domain_uuid, summary = self._locate(backend_id)
        except NotFound:
            return
        self._host(config, uri, "delete", domain_uuid=domain_uuid, volumes=[])
        self._remove_disks(config, uri, domain_uuid, summary["meta"])

    def open_serial_console(self, backend_id: str) -> ConsoleStream:
        """The domain's serial console through a libvirt stream (libvirt_console.py)."""
        config, uri, domain_uuid, summary = self._locate(backend_id)
        if summary["state"] not in ("running", "rebooting", "rescue"):
            raise Rejected(f"The server is {summary['state']}: its serial console answers while it runs.")
        try:
            return LibvirtConsole(self.hosts.open_console(uri, domain_uuid, run_as=self._run_as(config)))
        except HostError as error:
            kind = {"transient": Transient, "rejected": Rejected, "not_found": NotFound}[error.kind]
            raise kind(error.message, error.detail) from None

    def console_output(self, backend_id: str) -> str:
        """The last 200 lines (at most 16 KB) of the serial console log, read from disk_dir (local,
        or shared with the hosts); "" for servers on remote storage-pool hosts."""
        zone, host, domain_uuid = self._parse_id(backend_id)
        config = self._config(zone)
        uri = next((uri for uri in config["hosts"] if host_key(uri) == host), config["hosts"][0])
        if config.get("storage_pool"):
            if urlsplit(uri).hostname:
                return ""  # the log is on that host's disk
            path = Path(config["console_log_dir"]) / f"portal-{domain_uuid}.console.log"
        else:
            path = self._disk_dir(config, uri) / domain_uuid / "console.log"
        try:
            with open(path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16384))
                tail = log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            self._locate(backend_id)  # NotFound when the server is gone; else nothing printed yet
            return ""
        except OSError:
            return ""
        lines = tail.splitlines()
        if len(tail) >= 16384 and lines:
            lines = lines[1:]  # cut mid-line
        return "\n".join(lines[-200:])


class LibvirtConsole(ConsoleStream):
    """The host side's console (DomainConsole or HelperConsole) as the interface's ConsoleStream."""

    def __init__(self, console) -> None:
        self._console = console

    def read(self, timeout: float) -> bytes:
        try:
            return self._console.read(timeout)
        except ConsoleEnded as ended:
            raise ConsoleClosed(str(ended)) from None

    def write(self, data: bytes) -> None:
        try:
            self._console.write(data)
        except ConsoleEnded as ended:
            raise ConsoleClosed(str(ended)) from None

    def close(self) -> None:
        self._console.close()
