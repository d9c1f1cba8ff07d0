"""libvirt/KVM: servers are libvirt domains on the zone's hosts (docs/backends/libvirt.md).

A zone lists its hosts as libvirt URIs (`qemu+ssh://kvm1/system`). A server is a domain whose UUID
is the portal instance's UUID, named `portal-<uuid>`, with the portal's facts (instance id, zone,
flavor, image, where its files are) in `<metadata>` under our own XML namespace: that is how
`find_server` adopts a server created before a crash and how `list_servers` tells ours from the
host's other domains. Its root disk is a qcow2 overlay on an image from the image store, its
cloud-init NoCloud seed a small ISO, its serial console goes to a log file.

Every call submits and returns: `stop_server` presses the ACPI power button and notes a deadline in
the domain's live metadata; the next `get_server` after the deadline pulls the plug.

Two ways to reach a host:
- through a libvirt daemon (`qemu:///system`, `qemu+ssh://…`): one connection per host and process,
  kept open and reopened when it breaks;
- libvirt's embedded QEMU driver (`qemu:///embed?root=DIR`, no daemon, for development and tests).
  The driver lives inside the process that opens it, and only one process at a time may hold a
  root, until that process exits. So each call runs in a short helper process (this file run as a
  script: no Django, ~0.1 s) that waits for a lock, opens the root, does its work and exits. QEMU
  outlives it, and the next helper re-attaches to the running VMs.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

try:
    import libvirt
except ImportError:  # reported as a clear error when a zone uses this backend
    libvirt = None

# Our namespace for domain <metadata>; the element is <portal:server> with one child per fact.
METADATA_NS = "urn:iaas-portal:libvirt-server:1"
METADATA_PREFIX = "portal"
HELPER_TIMEOUT_SECONDS = 120
LOCK_WAIT_SECONDS = 60
REPRESS_SECONDS = 5  # while stopping, get_server presses the power button again this often


class HostError(Exception):
    """What went wrong on a host, as data (it crosses the helper process boundary as JSON)."""

    def __init__(self, kind: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.kind, self.message, self.detail = kind, message, detail or message

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "detail": self.detail}


# --- Host side: plain data in and out, libvirt and the standard library only -------------------

_event_loop_pid = 0
_event_loop_lock = threading.Lock()


def ensure_event_loop() -> None:
    """libvirt needs an event loop for keepalives (remote) and for the embedded driver."""
    global _event_loop_pid
    with _event_loop_lock:
        if _event_loop_pid == os.getpid():
            return
        if _event_loop_pid == 0:
            libvirt.registerErrorHandler(lambda _ctx, _error: None, None)  # errors arrive as exceptions
            libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_pid = os.getpid()


TRANSIENT_CODES = {
    "VIR_ERR_NO_CONNECT",
    "VIR_ERR_SYSTEM_ERROR",
    "VIR_ERR_RPC",
    "VIR_ERR_OPERATION_TIMEOUT",
    "VIR_ERR_AUTH_FAILED",
    "VIR_ERR_AUTH_UNAVAILABLE",
    "VIR_ERR_AGENT_UNRESPONSIVE",
    "VIR_ERR_RESOURCE_BUSY",
    "VIR_ERR_INTERNAL_ERROR",
    "VIR_ERR_OPERATION_FAILED",
}


def _code(error) -> int:
    return error.get_error_code() if hasattr(error, "get_error_code") else -1


def _is(error, *names: str) -> bool:
    return any(_code(error) == getattr(libvirt, name, -2) for name in names)


def open_host(uri: str):
    """A connection to the host at `uri`; not answering is a transient error (we retry)."""
    ensure_event_loop()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as error:
        raise HostError(
            "transient", "The cloud's host did not answer; we will retry.", f"{uri}: open: {error}"
        ) from None


def host_error(error, uri: str, doing: str) -> HostError:
    """A libvirt error as the portal should see it: retry later, or refused for good."""
    detail = f"{uri}: {doing}: {error}"
    if _is(error, "VIR_ERR_NO_DOMAIN"):
        return HostError("not_found", "The server no longer exists in the cloud.", detail)
    if _is(error, "VIR_ERR_OPERATION_INVALID"):
        return HostError("rejected", "The server can't do that in its current state.", detail)
    if _is(error, *TRANSIENT_CODES) or _code(error) == -1:
        return HostError("transient", "The cloud's host did not answer as expected; we will retry.", detail)
    return HostError("rejected", "The cloud refused this request.", detail)


def _meta_of(domain, flags: int) -> dict | None:
    """Our metadata as {tag: text}; None for a domain the portal did not create."""
    try:
        text = domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, flags)
    except libvirt.libvirtError as error:
        if _is(error, "VIR_ERR_NO_DOMAIN_METADATA"):
            return None
        raise
    return {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in ET.fromstring(text)}  # noqa: S314 — from our own host


def meta_xml(meta: dict) -> str:
    root = ET.Element("server")
    for key, value in meta.items():
        ET.SubElement(root, key).text = str(value)
    return ET.tostring(root, encoding="unicode")


def _set_meta(domain, meta: dict, flags: int | None = None) -> None:
    """Replace our metadata: of the running domain by default (gone once it stops), or of its
    persistent definition with VIR_DOMAIN_AFFECT_CONFIG."""
    domain.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
        meta_xml(meta),
        METADATA_PREFIX,
        METADATA_NS,
        libvirt.VIR_DOMAIN_AFFECT_LIVE if flags is None else flags,
    )


def _persistent_meta(domain) -> dict:
    return _meta_of(domain, libvirt.VIR_DOMAIN_AFFECT_CONFIG) or {}


def domain_state(state: int, reason: int, meta: dict) -> tuple[str, str]:
    """libvirt's (state, reason) as a BackendState value and a fault for the customer."""
    v = libvirt
    powering_off = "rebooting" if meta.get("then-start") else "stopping"
    if state in (v.VIR_DOMAIN_RUNNING, v.VIR_DOMAIN_BLOCKED, v.VIR_DOMAIN_PMSUSPENDED):
        return (powering_off if meta.get("stop-deadline") else "running"), ""
    if state == v.VIR_DOMAIN_SHUTDOWN:
        return powering_off, ""
    if state == v.VIR_DOMAIN_SHUTOFF:
        # A guest that powers itself off while no helper watches is recorded as "crashed" by
        # some libvirt versions: every shut-off domain is simply stopped.
        return ("rebooting" if meta.get("start-after-stop") else "stopped"), ""
    if state == v.VIR_DOMAIN_PAUSED:
        if reason == v.VIR_DOMAIN_PAUSED_SHUTTING_DOWN:
            return powering_off, ""
        if reason == v.VIR_DOMAIN_PAUSED_STARTING_UP:
            return "starting", ""
        if reason == v.VIR_DOMAIN_PAUSED_IOERROR:
            return "error", "The server's disk reported an error on the host."
        if reason == v.VIR_DOMAIN_PAUSED_CRASHED:
            return "error", "The server crashed."
        if reason == v.VIR_DOMAIN_PAUSED_USER:
            return "error", "The server was paused by the cloud's operator."
        return "running", ""  # migration, snapshot, save: the host is busy with it for a moment
    if state == v.VIR_DOMAIN_CRASHED:
        return "error", "The server crashed."
    return "building", ""


ADDRESS_SOURCES = {
    "lease": "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE",
    "arp": "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP",
}


def _addresses(domain, source: str) -> list[str]:
    """From the libvirt network's DHCP leases, or the host's ARP table (bridges). Only asked for
    when the zone has such a network: the query otherwise waits seconds for a network daemon."""
    try:
        interfaces = domain.interfaceAddresses(getattr(libvirt, ADDRESS_SOURCES[source]))
    except libvirt.libvirtError:
        return []  # no lease or ARP entry yet
    return [
        address["addr"]
        for interface in interfaces.values()
        for address in interface.get("addrs") or ()
        if address.get("addr")
    ]


def _summary(domain) -> dict:
    state, reason = domain.state()
    active = bool(domain.isActive())
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE if active else libvirt.VIR_DOMAIN_AFFECT_CONFIG
    meta = _meta_of(domain, flags) or {}
    backend_state, fault = domain_state(state, reason, meta)
    info = domain.info()
    return {
        "uuid": domain.UUIDString(),
        "name": domain.name(),
        "state": backend_state,
        "fault": fault,
        "active": active,
        "vcpus": info[3],
        "memory_mib": info[1] // 1024,
        "meta": meta,
        "addresses": [],
    }


def _lookup(conn, domain_uuid: str):
    try:
        return conn.lookupByUUIDString(domain_uuid)
    except libvirt.libvirtError as error:
        if _is(error, "VIR_ERR_NO_DOMAIN"):
            return None
        raise


def _settled(domain) -> None:
    """After the embedded driver starts, it re-attaches to running VMs in the background (holding a
    job on each): wait for that before acting, or e.g. destroy races it and reports an error."""
    for _ in range(500):
        try:
            if domain.controlInfo()[0] == libvirt.VIR_DOMAIN_CONTROL_OK:
                return
        except libvirt.libvirtError:
            return  # not running: nothing to re-attach to
        time.sleep(0.01)


def op_survey(conn) -> dict:
    """The host's size and every domain on it (ours carry `meta`), for placement and capacity."""
    info = conn.getInfo()
    try:
        free_mib = conn.getFreeMemory() // (1024 * 1024) or None  # 0: the driver does not know
    except libvirt.libvirtError:
        free_mib = None  # not every driver reports it
    domains = []
    for domain in conn.listAllDomains():
        try:
            domains.append(_summary(domain))
        except libvirt.libvirtError as error:
            if not _is(error, "VIR_ERR_NO_DOMAIN"):  # undefined meanwhile
                raise
    return {
        "hostname": conn.getHostname(),
        "cpus": info[2],
        "memory_mib": info[1],
        "free_mib": free_mib,
        "domains": domains,
    }


def op_status(conn, domain_uuid: str, now: float, address_source: str = "") -> dict | None:
    domain = _lookup(conn, domain_uuid)
    if domain is None:
        return None
    _settled(domain)
    summary = _summary(domain)
    meta, deadline = summary["meta"], summary["meta"].get("stop-deadline")
    if summary["active"] and deadline and float(deadline) <= now:
        # The guest ignored the power button: pull the plug.
        with contextlib.suppress(libvirt.libvirtError):
            domain.destroy()
        summary = _summary(domain)
    elif summary["active"] and deadline and now - float(meta.get("stop-pressed", 0)) >= REPRESS_SECONDS:
        # A guest still booting misses the button (no ACPI daemon yet): press it again.
        with contextlib.suppress(libvirt.libvirtError):
            _set_meta(domain, {**meta, "stop-pressed": f"{now:.0f}"})
            domain.shutdown()
    if not summary["active"] and summary["meta"].get("start-after-stop"):
        # The second half of an emulated reboot (see op_reboot): the guest is off, start it.
        _set_meta(domain, _without(summary["meta"], "start-after-stop"), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        domain.create()
        summary = _summary(domain)
    if summary["active"] and address_source:
        summary["addresses"] = _addresses(domain, address_source)
    return summary


def op_create(conn, domain_uuid: str, domain_xml: str) -> dict:
    existing = _lookup(conn, domain_uuid)
    if existing is not None:  # a concurrent attempt got here first: never redefine or undo it
        return _summary(existing)
    domain = conn.defineXML(domain_xml)
    try:
        domain.create()
    except libvirt.libvirtError:
        with contextlib.suppress(libvirt.libvirtError):
            domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        raise
    return _summary(domain)


def _domain(conn, domain_uuid: str):
    domain = _lookup(conn, domain_uuid)
    if domain is None:
        raise HostError("not_found", "The server no longer exists in the cloud.", f"no domain {domain_uuid}")
    _settled(domain)
    return domain


def _refuse(summary: dict, what: str) -> HostError:
    return HostError(
        "rejected",
        f"The server is {summary['state']} and can't {what} right now.",
        f"domain {summary['uuid']} is {summary['state']}: {what} refused",
    )


def op_start(conn, domain_uuid: str) -> None:
    domain = _domain(conn, domain_uuid)
    summary = _summary(domain)
    if summary["state"] in ("running", "starting", "rebooting"):
        return
    if summary["state"] != "stopped":
        raise _refuse(summary, "start")
    domain.create()


def op_stop(conn, domain_uuid: str, deadline: float) -> None:
    domain = _domain(conn, domain_uuid)
    summary = _summary(domain)
    if summary["state"] in ("stopped", "stopping"):
        return
    if summary["state"] == "rebooting":  # stay off once the reboot's power-off is through
        _set_meta(
            domain, _without(_persistent_meta(domain), "start-after-stop"), libvirt.VIR_DOMAIN_AFFECT_CONFIG
        )
        if summary["active"]:
            _set_meta(domain, _without(summary["meta"], "then-start"))
        return
    if summary["state"] != "running":
        raise _refuse(summary, "stop")
    _power_off(domain, summary["meta"], deadline)


def _power_off(domain, meta: dict, deadline: float, **extra: str) -> None:
    """Press the ACPI power button; op_status pulls the plug once the deadline has passed."""
    _set_meta(
        domain, {**meta, "stop-deadline": f"{deadline:.0f}", "stop-pressed": f"{time.time():.0f}", **extra}
    )
    try:
        domain.shutdown()
    except libvirt.libvirtError:
        domain.destroy()


def _without(meta: dict, key: str) -> dict:
    return {name: value for name, value in meta.items() if name != key}


def op_reboot(conn, domain_uuid: str, hard: bool, deadline: float, emulate: bool) -> None:
    domain = _domain(conn, domain_uuid)
    summary = _summary(domain)
    if summary["state"] == "rebooting" and not hard:
        return
    if summary["state"] not in ("running", "rebooting"):
        raise _refuse(summary, "reboot")
    if hard:
        # As Nova does: off and on again, a cold boot (a reset makes the firmware reload the
        # kernel slowly under emulation, and a cold start picks up the current definition).
        _set_meta(
            domain, _without(_persistent_meta(domain), "start-after-stop"), libvirt.VIR_DOMAIN_AFFECT_CONFIG
        )
        domain.destroy()
        domain.create()
    elif emulate:
        # The embedded driver: nobody is attached to restart the guest when it has shut down
        # (libvirt's own reboot would wait for the next call, then reset: slow under emulation).
        # Power off as for a stop, remembering in the definition to start it again; op_status,
        # polled by the portal, does that (and pulls the plug if the guest ignores the button).
        _set_meta(
            domain, {**_persistent_meta(domain), "start-after-stop": "1"}, libvirt.VIR_DOMAIN_AFFECT_CONFIG
        )
        _power_off(domain, summary["meta"], deadline, **{"then-start": "1"})
    else:
        domain.reboot(0)  # ACPI power button; libvirtd starts the guest again once it has shut down


def op_resize(conn, domain_uuid: str, vcpus: int, memory_mib: int, flavor: str) -> None:
    domain = _domain(conn, domain_uuid)
    summary = _summary(domain)
    if summary["state"] != "stopped":
        raise HostError(
            "rejected", "Stop the server before resizing it.", f"domain {domain_uuid} is {summary['state']}"
        )
    total_cpus = conn.getInfo()[2]
    if vcpus > total_cpus:
        raise HostError(
            "rejected",
            "This size does not fit on the server's host. Try a smaller size.",
            f"{vcpus} vCPUs asked, the host has {total_cpus}",
        )
    definition = ET.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))  # noqa: S314 — our host
    definition.find("vcpu").text = str(vcpus)
    for tag in ("memory", "currentMemory"):
        element = definition.find(tag)
        if element is not None:
            element.text, element.attrib = str(memory_mib), {"unit": "MiB"}
    meta = _persistent_meta(domain)
    ET.register_namespace(METADATA_PREFIX, METADATA_NS)
    domain = conn.defineXML(ET.tostring(definition, encoding="unicode"))
    _set_meta(domain, {**meta, "flavor": flavor}, libvirt.VIR_DOMAIN_AFFECT_CONFIG)


def op_delete(conn, domain_uuid: str, volumes: list[str]) -> None:
    domain = _lookup(conn, domain_uuid)
    if domain is not None:
        _settled(domain)
        if domain.isActive():
            with contextlib.suppress(libvirt.libvirtError):
                domain.destroy()
        flags = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        flags |= libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        try:
            domain.undefineFlags(flags)
        except libvirt.libvirtError as error:
            if _is(error, "VIR_ERR_NO_SUPPORT", "VIR_ERR_INVALID_ARG"):  # drivers without those flags
                domain.undefine()
            elif not _is(error, "VIR_ERR_NO_DOMAIN"):
                raise
    for path in volumes:
        try:
            conn.storageVolLookupByPath(path).delete(0)
        except libvirt.libvirtError as error:
            if not _is(error, "VIR_ERR_NO_STORAGE_VOL"):
                raise


def op_create_volumes(conn, pool: str, volumes: list[dict]) -> list[str]:
    """Storage-pool hosts: create the overlay (libvirt runs qemu-img on the host) and upload the
    seed ISO through the connection. Returns the volumes' paths on the host."""
    storage = conn.storagePoolLookupByName(pool)
    created, paths = [], []
    try:
        for volume in volumes:
            existing = None
            with contextlib.suppress(libvirt.libvirtError):
                existing = storage.storageVolLookupByName(volume["name"])
            if existing is not None:
                existing.delete(0)  # left over from an attempt that failed half-way
            made = storage.createXML(volume["xml"], 0)
            created.append(made)
            if volume.get("upload") is not None:
                data = io.BytesIO(bytes.fromhex(volume["upload"]))
                stream = conn.newStream(0)
                made.upload(stream, 0, len(data.getbuffer()), 0)
                stream.sendAll(lambda _stream, size, source: source.read(size), data)
                stream.finish()
            paths.append(made.path())
    except libvirt.libvirtError:
        for made in created:
            with contextlib.suppress(libvirt.libvirtError):
                made.delete(0)
        raise
    return paths


HOST_OPS = {
    "survey": op_survey,
    "status": op_status,
    "create": op_create,
    "start": op_start,
    "stop": op_stop,
    "reboot": op_reboot,
    "resize": op_resize,
    "delete": op_delete,
    "create_volumes": op_create_volumes,
}


def embedded_root(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.path.rstrip("/") == "/embed":
        return (parse_qs(parts.query).get("root") or [None])[0]
    return None


def _helper_main() -> None:
    """Run one host operation on an embedded-driver root (see the module docstring)."""
    request = json.load(sys.stdin)
    uri, root = request["uri"], embedded_root(request["uri"])
    try:
        if libvirt is None:
            raise HostError("transient", "The cloud is not reachable.", "libvirt-python is not installed")
        run_as = request.get("run_as")
        if run_as and os.geteuid() == 0:
            import pwd

            account = pwd.getpwnam(run_as)
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
        lock = open(os.path.join(root, "portal-embed.lock"), "a")  # noqa: SIM115 — held until exit
        waited = 0.0
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if waited > LOCK_WAIT_SECONDS:
                    raise HostError(
                        "transient", "The cloud is busy; we will retry.", f"{root} locked for {waited:.0f} s"
                    ) from None
                time.sleep(0.05)
                waited += 0.05
        conn = open_host(uri)
        try:
            result = HOST_OPS[request["op"]](conn, **request["args"])
        except libvirt.libvirtError as error:
            raise host_error(error, uri, request["op"]) from None
        json.dump({"result": result}, sys.stdout)
    except HostError as error:
        json.dump({"error": error.as_dict()}, sys.stdout)
    sys.stdout.flush()
    # Leave without tearing the driver down: QEMU keeps running, the next helper re-attaches.
    os._exit(0)


if __name__ == "__main__":
    _helper_main()

# --- Portal side -------------------------------------------------------------------------------

import pwd  # noqa: E402 — after the helper's entry point, which must not import Django
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from email.mime.multipart import MIMEMultipart  # noqa: E402
from email.mime.text import MIMEText  # noqa: E402
from pathlib import Path  # noqa: E402

from portal.compute.backends.base import (  # noqa: E402
    IDEMPOTENCY_METADATA_KEY,
    BackendState,
    ComputeBackend,
    NotFound,
    Rejected,
    ServerSpec,
    ServerState,
    Transient,
    ZoneCapacity,
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


def host_key(uri: str) -> str:
    return urlsplit(uri).hostname or "localhost"


def domain_uuid_for(idempotency_key: str) -> str:
    """The instance's UUID is the domain's; any other key maps to a stable UUID of its own."""
    try:
        return str(uuid.UUID(idempotency_key))
    except ValueError:
        return str(uuid.uuid5(INSTANCE_NAMESPACE, idempotency_key))


def hostname_for(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return cleaned or "server"


def seed_files(spec: ServerSpec) -> dict[str, str]:
    """cloud-init NoCloud: meta-data names the instance, user-data carries the SSH keys and the
    customer's own user data (a MIME multipart when there is some, so any format works)."""
    meta_data = f"instance-id: {spec.idempotency_key}\nlocal-hostname: {hostname_for(spec.name)}\n"
    keys = f"#cloud-config\nssh_authorized_keys: {json.dumps(list(spec.ssh_keys))}\n"
    if not spec.user_data.strip():
        return {"meta-data": meta_data, "user-data": keys}
    message = MIMEMultipart()
    message.attach(MIMEText(keys, "cloud-config"))
    user_data = spec.user_data
    if user_data.startswith("#cloud-config"):
        kind = "cloud-config"
    elif user_data.startswith("#!"):
        kind = "x-shellscript"
    elif user_data.startswith("#include"):
        kind = "x-include-url"
    else:
        kind = "x-shellscript"  # what a bare script most likely is; cloud-init ignores what it can't run
        user_data = "#!/bin/sh\n" + user_data
    message.attach(MIMEText(user_data, kind))
    return {"meta-data": meta_data, "user-data": message.as_string()}


def build_seed_iso(files: dict[str, str]) -> bytes:
    """An ISO 9660 volume labelled `cidata`, made with genisoimage or xorriso."""
    with tempfile.TemporaryDirectory(prefix="portal-seed-") as scratch:
        directory = Path(scratch)
        for name, text in files.items():
            (directory / name).write_text(text)
        target = directory / "seed.iso"
        args = ["-quiet", "-output", str(target), "-volid", "cidata", "-joliet", "-rock", *files]
        if shutil.which("genisoimage"):
            command = ["genisoimage", *args]
        elif shutil.which("xorriso"):
            command = ["xorriso", "-as", "genisoimage", *args]
        else:
            raise Transient(
                "The cloud can't prepare new servers right now.",
                "neither genisoimage nor xorriso is installed on the portal's workers",
            )
        _run(command, cwd=directory)
        return target.read_bytes()


def _run(command: list[str], cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Transient("The cloud can't prepare new servers right now.", f"{command[0]}: {error}") from None
    if result.returncode != 0:
        raise Transient(
            "The cloud can't prepare new servers right now.",
            f"{' '.join(command)} exited {result.returncode}: {(result.stderr or result.stdout).strip()[-800:]}",
        )
    return result.stdout


@dataclass(frozen=True)
class Disks:
    root: str
    seed: str
    console_log: str
    volumes: tuple[str, ...] = ()  # storage-pool volumes to delete with the server
    directory: str = ""  # a directory of the portal's own to remove with the server


def domain_xml(
    *,
    spec: ServerSpec,
    domain_uuid: str,
    config: dict,
    disks: Disks,
    memory_mib: int,
    root_format: str = "qcow2",
) -> str:
    """The domain definition (a pure function, so tests can read what we would ask for)."""
    domain = ET.Element("domain", type=config["domain_type"])
    ET.SubElement(domain, "name").text = f"portal-{domain_uuid}"
    ET.SubElement(domain, "uuid").text = domain_uuid
    ET.SubElement(domain, "title").text = spec.name.replace("\n", " ")[:200]
    metadata = ET.SubElement(domain, "metadata")
    server = ET.SubElement(metadata, f"{{{METADATA_NS}}}server")
    facts = {
        "instance-id": spec.idempotency_key,
        "zone": spec.zone,
        "name": spec.name,
        "flavor": spec.flavor,
        "image": spec.image,
        "root-disk": disks.root,
        "seed": disks.seed,
        "console-log": disks.console_log,
        "directory": disks.directory,
        "volumes": "\n".join(disks.volumes),
    }
    for key, value in facts.items():
        ET.SubElement(server, f"{{{METADATA_NS}}}{key}").text = value
    ET.SubElement(domain, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(domain, "vcpu").text = str(spec.vcpus)
    os_element = ET.SubElement(domain, "os")
    os_type = ET.SubElement(os_element, "type", arch=config.get("arch", "x86_64"))
    if config["machine"]:
        os_type.set("machine", config["machine"])
    os_type.text = "hvm"
    if config.get("kernel"):
        ET.SubElement(os_element, "kernel").text = config["kernel"]
        if config.get("initrd"):
            ET.SubElement(os_element, "initrd").text = config["initrd"]
        ET.SubElement(os_element, "cmdline").text = config["cmdline"]
    else:
        ET.SubElement(os_element, "boot", dev="hd")
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if config["domain_type"] == "kvm":
        ET.SubElement(domain, "cpu", mode=config.get("cpu_mode", "host-passthrough"))
    ET.SubElement(domain, "clock", offset="utc")
    for event, action in (("on_poweroff", "destroy"), ("on_reboot", "restart"), ("on_crash", "destroy")):
        ET.SubElement(domain, event).text = action
    devices = ET.SubElement(domain, "devices")
    for path, target, driver_type, read_only in (
        (disks.root, "vda", root_format, False),
        (disks.seed, "vdb", "raw", True),
    ):
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type=driver_type)
        ET.SubElement(disk, "source", file=path)
        ET.SubElement(disk, "target", dev=target, bus="virtio")
        if read_only:
            ET.SubElement(disk, "readonly")
    network = config.get("network") or "user"
    interface = None
    if config.get("bridge"):
        interface = ET.SubElement(devices, "interface", type="bridge")
        ET.SubElement(interface, "source", bridge=config["bridge"])
    elif network == "user":  # outbound only, through QEMU: works anywhere, reachable from nowhere
        interface = ET.SubElement(devices, "interface", type="user")
    elif network != "none":
        interface = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(interface, "source", network=network)
    if interface is not None:
        ET.SubElement(interface, "model", type="virtio")
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "log", file=disks.console_log, append="on")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    ET.SubElement(devices, "controller", type="usb", model="none")
    ET.SubElement(devices, "memballoon", model="none")
    ET.register_namespace(METADATA_PREFIX, METADATA_NS)
    return ET.tostring(domain, encoding="unicode")


class LibvirtBackend(ComputeBackend):
    def __init__(self, name: str, **options) -> None:
        super().__init__(name, **options)
        self._connections: dict[str, object] = {}
        self._connections_pid = os.getpid()
        self._lock = threading.Lock()

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
            if embedded_root(uri):
                return self._in_helper(config, uri, op, args)
            return self._in_process(uri, op, args)
        except HostError as error:
            kind = {"transient": Transient, "rejected": Rejected, "not_found": NotFound}[error.kind]
            raise kind(error.message, error.detail) from None

    def _connection(self, uri: str):
        if libvirt is None:
            raise HostError("transient", "The cloud is not reachable.", "libvirt-python is not installed")
        with self._lock:
            if self._connections_pid != os.getpid():  # forked (Celery prefork): the parent's are not ours
                self._connections, self._connections_pid = {}, os.getpid()
            conn = self._connections.get(uri)
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except libvirt.libvirtError:
                    pass
                self._connections.pop(uri, None)
            conn = open_host(uri)
            if urlsplit(uri).hostname:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.setKeepAlive(5, 3)
            self._connections[uri] = conn
            return conn

    def _in_process(self, uri: str, op: str, args: dict):
        conn = self._connection(uri)
        try:
            return HOST_OPS[op](conn, **args)
        except libvirt.libvirtError as error:
            problem = host_error(error, uri, op)
            if problem.kind == "transient":
                with self._lock:
                    self._connections.pop(uri, None)  # reopen next time
            raise problem from None

    def _in_helper(self, config: dict, uri: str, op: str, args: dict):
        root = Path(embedded_root(uri))
        self._prepare_embedded_root(root, self._run_as(config))
        home = str(root / "home")
        env = os.environ | {
            name: home
            for name in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR", "XDG_DATA_HOME")
        }
        request = {"uri": uri, "op": op, "args": args, "run_as": self._run_as(config)}
        try:
            result = subprocess.run(  # noqa: S603 — our own file, this interpreter
                [sys.executable, "-P", __file__],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                timeout=HELPER_TIMEOUT_SECONDS,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise HostError(
                "transient", "The cloud's host did not answer; we will retry.", f"{uri}: {op} timed out"
            ) from None
        try:
            answer = json.loads(result.stdout)
        except ValueError:
            raise HostError(
                "transient",
                "The cloud's host did not answer as expected; we will retry.",
                f"{uri}: {op} helper exited {result.returncode}: {result.stderr.strip()[-1500:]}",
            ) from None
        if "error" in answer:
            error = answer["error"]
            detail = error["detail"]
            if "Failed to parse user 'libvirt-qemu'" in detail:
                detail += (
                    " (as root, the embedded driver needs a libvirt-qemu user: create it with `useradd --system"
                    " --user-group --no-create-home libvirt-qemu`, or set embed_user to run it as another user)"
                )
            raise HostError(error["kind"], error["message"], detail)
        return answer["result"]

    def _prepare_embedded_root(self, root: Path, run_as: str | None) -> None:
        """The root directory, owned by whoever runs the driver, and its qemu.conf: no virtlogd
        (there is no daemon), and QEMU as root when the driver runs as root."""
        if (root / "etc" / "qemu.conf").exists() and (root / "portal-embed.lock").exists():
            return
        root.mkdir(parents=True, exist_ok=True)
        (root / "home").mkdir(exist_ok=True)
        (root / "etc").mkdir(exist_ok=True)
        config = root / "etc" / "qemu.conf"
        if not config.exists():
            lines = [
                "# Written by the portal's libvirt backend for the embedded driver.",
                'stdio_handler = "file"',
            ]
            if os.geteuid() == 0 and not run_as:
                lines += ['user = "root"', 'group = "root"']
            config.write_text("\n".join(lines) + "\n")
        (root / "portal-embed.lock").touch()
        if run_as and os.geteuid() == 0:
            account = pwd.getpwnam(run_as)
            for path in (root, root / "home", root / "etc", root / "portal-embed.lock"):
                os.chown(path, account.pw_uid, account.pw_gid)

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
            metadata={IDEMPOTENCY_METADATA_KEY: key, "host": host_key(uri), "domain": summary["name"]},
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
        image = Path(self._image_path(config, spec.image))
        if not image.is_file():
            raise Rejected(
                f"The image {spec.image} is not available in zone {spec.zone}. Please choose another image.",
                f"no image file {image}",
            )
        info = json.loads(_run(["qemu-img", "info", "--output=json", str(image)]))
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
        _run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                str(image.resolve()),
                "-F",
                fmt,
                disks.root,
                str(wanted),
            ]
        )
        Path(disks.seed).write_bytes(build_seed_iso(seed_files(spec)))
        run_as = self._run_as(config) if embedded_root(uri) else None
        if run_as and os.geteuid() == 0:
            account = pwd.getpwnam(run_as)
            for path in (directory, server_dir, Path(disks.root), Path(disks.seed)):
                os.chown(path, account.pw_uid, account.pw_gid)
        return disks, "qcow2"

    def _pool_disks(self, config: dict, uri: str, spec: ServerSpec, domain_uuid: str) -> tuple[Disks, str]:
        image = self._image_path(config, spec.image)
        image_format = "raw" if image.endswith((".raw", ".img")) else "qcow2"
        seed = build_seed_iso(seed_files(spec))
        root_xml = (
            f"<volume><name>{domain_uuid}-root.qcow2</name>"
            f"<capacity unit='G'>{spec.root_disk_gib}</capacity>"
            "<target><format type='qcow2'/></target>"
            f"<backingStore><path>{_xml_text(image)}</path><format type='{image_format}'/></backingStore></volume>"
        )
        seed_xml = (
            f"<volume><name>{domain_uuid}-seed.iso</name><capacity unit='bytes'>{len(seed)}</capacity>"
            "<target><format type='raw'/></target></volume>"
        )
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


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")
