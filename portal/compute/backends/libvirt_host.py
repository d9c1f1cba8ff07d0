"""What runs against one libvirt host: plain data in and out, libvirt and the standard library only.

Each `op_*` takes an open `virConnect` and JSON-able arguments and answers with JSON-able data
(a domain's summary, a host's survey); failures are `HostError`s, which carry their kind
("transient", "rejected", "not_found") as data. `LibvirtBackend` turns them into the portal's
errors (docs/backends/libvirt.md).

This file is also the helper process of the embedded QEMU driver (`python -P libvirt_host.py`,
see `libvirt_connection.py`): it must not import Django or the portal, and runs with -P so that
the sibling `libvirt.py` can't shadow the libvirt binding.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import io
import json
import os
import sys
import threading
import time
import types
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

try:
    import libvirt
except ImportError:  # reported as a clear error when a zone uses this backend
    libvirt = None

# Our namespace for domain <metadata>; the element is <portal:server> with one child per fact.
METADATA_NS = "urn:iaas-portal:libvirt-server:1"
METADATA_PREFIX = "portal"
LOCK_WAIT_SECONDS = 60
REPRESS_SECONDS = 5  # while stopping, get_server presses the power button again this often


class HostError(Exception):
    """What went wrong on a host, as data (it crosses the helper process boundary as JSON)."""

    def __init__(self, kind: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.kind, self.message, self.detail = kind, message, detail or message

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "detail": self.detail}


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


POWERING_OFF_FOR = (("then-start", "rebooting"), ("then-rescue", "rescuing"), ("then-unrescue", "unrescuing"))
OFF_UNTIL = (
    ("start-after-stop", "rebooting"),
    ("rescue-pending", "rescuing"),
    ("unrescue-pending", "unrescuing"),
)


def domain_state(state: int, reason: int, meta: dict) -> tuple[str, str]:
    """libvirt's (state, reason) as a BackendState value and a fault for the customer."""
    v = libvirt
    # What the power button is pressed for, and what a shut-off domain waits for (libvirt_host_rescue).
    powering_off = next((name for key, name in POWERING_OFF_FOR if meta.get(key)), "stopping")
    if state in (v.VIR_DOMAIN_RUNNING, v.VIR_DOMAIN_BLOCKED, v.VIR_DOMAIN_PMSUSPENDED):
        return (
            powering_off if meta.get("stop-deadline") else "rescue" if meta.get("rescue") else "running"
        ), ""
    if state == v.VIR_DOMAIN_SHUTDOWN:
        return powering_off, ""
    if state == v.VIR_DOMAIN_SHUTOFF:
        # A guest that powers itself off while no helper watches is recorded as "crashed" by
        # some libvirt versions: every shut-off domain is simply stopped.
        return next((name for key, name in OFF_UNTIL if meta.get(key)), "stopped"), ""
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
    if not summary["active"] and summary["state"] in ("rescuing", "unrescuing"):
        summary = _summary(RESCUE.finish(conn, domain))  # off now: boot the rescue system, or leave it
    if summary["active"] and address_source:
        summary["addresses"] = _addresses(domain, address_source)
    return summary


def vnc_display(live_xml: str) -> dict | None:
    """The running domain's VNC display from its live XML (libvirt writes the port it picked
    there): {"host": …, "port": …}, or None when it has none (defined without one, or off)."""
    graphics = ET.fromstring(live_xml).find("devices/graphics[@type='vnc']")  # noqa: S314 — libvirt's own XML
    port = int(graphics.get("port", "-1")) if graphics is not None else -1
    if port <= 0:
        return None
    listen = graphics.find("listen[@type='address']")
    address = (listen.get("address") if listen is not None else None) or graphics.get("listen") or "127.0.0.1"
    return {"host": address, "port": port}


def op_display(conn, domain_uuid: str) -> dict | None:
    domain = _domain(conn, domain_uuid)
    return vnc_display(domain.XMLDesc(0)) if domain.isActive() else None


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


def domain(conn, domain_uuid: str):
    """The domain, settled (see `_settled`); HostError not_found when there is none."""
    return _domain(conn, domain_uuid)


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
    "display": op_display,
    "stop": op_stop,
    "reboot": op_reboot,
    "resize": op_resize,
    "delete": op_delete,
    "create_volumes": op_create_volumes,
}


def _load_sibling(name: str) -> types.ModuleType:
    """Host operations from a file beside this one (libvirt_host_disks.py: volumes and snapshots;
    libvirt_host_rescue.py: rescue mode; libvirt_host_password.py: password reset). Loaded by path and handed this module, since the helper
    process can't import the portal package."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"portal_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.host = sys.modules[__name__]
    HOST_OPS.update(module.OPS)
    return module


_load_sibling("libvirt_host_disks")
RESCUE = _load_sibling("libvirt_host_rescue")
_load_sibling("libvirt_host_password")


def embedded_root(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.path.rstrip("/") == "/embed":
        return (parse_qs(parts.query).get("root") or [None])[0]
    return None


def embedded_connection(request: dict):
    """In the helper: become the driver's user, wait for the root's lock (held until this process
    exits), open the embedded driver. Raises HostError."""
    uri, root = request["uri"], embedded_root(request["uri"])
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
    embedded_connection.lock = lock
    return open_host(uri)


def _helper_main() -> None:
    """Run one host operation on an embedded-driver root (see libvirt_connection.py)."""
    request = json.load(sys.stdin)
    uri = request["uri"]
    try:
        conn = embedded_connection(request)
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
