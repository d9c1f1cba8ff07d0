"""What runs against one libvirt host for volumes and snapshots: which domain uses a disk file,
hot attach and detach, growing a disk under a running guest, and copying a running guest's disk
(QEMU's block mirror). Plain data in and out, as `libvirt_host.py`, and like it without Django or
the portal: `libvirt_host` loads this file by its path and then hands it `host` (itself),
because in the embedded driver's helper process the portal package is not importable.
"""

from __future__ import annotations

import contextlib
import os
import types
import xml.etree.ElementTree as ET

try:
    import libvirt
except ImportError:  # reported as a clear error when a zone uses this backend
    libvirt = None

host: types.ModuleType | None = None  # libvirt_host, which sets it once it has loaded this module

FIRST_DATA_DISK = "vdc"  # vda is the root disk, vdb the cloud-init seed


def _disks(domain, flags: int) -> list[ET.Element]:
    tree = ET.fromstring(domain.XMLDesc(flags))  # noqa: S314 — from our own host
    return tree.findall("devices/disk")


def _source(disk: ET.Element) -> str:
    source = disk.find("source")
    return "" if source is None else source.get("file", "")


def _uses(domain, path: str) -> dict:
    """Where `path` is one of the domain's disks: in the running guest (live) and in its definition."""
    active = bool(domain.isActive())
    live = [d for d in _disks(domain, 0) if _source(d) == path] if active else []
    config = [d for d in _disks(domain, libvirt.VIR_DOMAIN_XML_INACTIVE) if _source(d) == path]
    found = (live or config or [None])[0]
    return {
        "live": bool(live),
        "config": bool(config),
        "active": active,
        "dev": "" if found is None else found.find("target").get("dev", ""),
        "mirror": bool(live) and live[0].find("mirror") is not None,
    }


def op_disk_users(conn, paths: list[str]) -> dict:
    """{path: {"domain": uuid, "live", "config", "active", "dev"}} for each path a domain on this
    host uses (the host's own domains too: a disk in use is in use)."""
    wanted, users = set(paths), {}
    for domain in conn.listAllDomains():
        try:
            active = bool(domain.isActive())
            if active:
                host._settled(domain)  # re-attaching also drops disks the guest let go of meanwhile
            sources = {_source(d) for d in _disks(domain, libvirt.VIR_DOMAIN_XML_INACTIVE)}
            if active:
                sources |= {_source(d) for d in _disks(domain, 0)}
            for path in sources & wanted:
                users[path] = {"domain": domain.UUIDString(), **_uses(domain, path)}
        except libvirt.libvirtError as error:
            if not host._is(error, "VIR_ERR_NO_DOMAIN"):  # undefined meanwhile
                raise
    return users


def _free_target(domain) -> str:
    taken = {d.find("target").get("dev") for d in _disks(domain, libvirt.VIR_DOMAIN_XML_INACTIVE)}
    if domain.isActive():
        taken |= {d.find("target").get("dev") for d in _disks(domain, 0)}
    for letter in "cdefghijklmnopqrstuvwxyz":
        if f"vd{letter}" not in taken:
            return f"vd{letter}"
    raise host.HostError("rejected", "The server has no room for another volume.", f"{sorted(taken)}")


def _disk_xml(path: str, dev: str, serial: str, fmt: str) -> str:
    disk = ET.Element("disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type=fmt)
    ET.SubElement(disk, "source", file=path)
    ET.SubElement(disk, "target", dev=dev, bus="virtio")
    ET.SubElement(disk, "serial").text = serial  # the guest's /dev/disk/by-id/virtio-<serial>
    return ET.tostring(disk, encoding="unicode")


def op_attach_disk(conn, domain_uuid: str, path: str, serial: str, fmt: str = "qcow2") -> dict:
    """Attach to the definition and, when the guest runs, hot plug it; what is there already is
    left alone (a retried attach). Returns the target, e.g. {"dev": "vdc"}."""
    domain = host._domain(conn, domain_uuid)
    use = _uses(domain, path)
    dev = use["dev"] or _free_target(domain)
    flags = 0
    if not use["config"]:
        flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
    if use["active"] and not use["live"]:
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    if flags:
        try:
            domain.attachDeviceFlags(_disk_xml(path, dev, serial, fmt), flags)
        except libvirt.libvirtError as error:
            if "slot" in str(error).lower() or "hotplug" in str(error).lower():
                raise host.HostError(
                    "rejected",
                    "The server can't take another disk while it runs. Stop it and attach the volume again.",
                    f"attach {path} to {domain_uuid}: {error}",
                ) from None
            raise
    return {"dev": dev}


def op_detach_disk(conn, domain_uuid: str, path: str) -> None:
    """Remove from the definition, and ask the running guest to let go of it: the guest may take a
    few seconds (it must release the device), so this does not wait; `disk_users` shows it going."""
    domain = host._lookup(conn, domain_uuid)
    if domain is None:
        return
    host._settled(domain)
    use = _uses(domain, path)
    if use["mirror"]:
        raise host.HostError(
            "transient", "The volume is being copied for a snapshot; we will retry.", f"{path} mirrored"
        )
    if use["live"]:
        live = next(d for d in _disks(domain, 0) if _source(d) == path)
        alias = live.find("alias")
        if alias is not None:
            domain.detachDeviceAlias(alias.get("name"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
        else:
            domain.detachDeviceFlags(ET.tostring(live, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    if use["config"]:
        config = next(d for d in _disks(domain, libvirt.VIR_DOMAIN_XML_INACTIVE) if _source(d) == path)
        domain.detachDeviceFlags(ET.tostring(config, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_CONFIG)


def op_resize_disk(conn, domain_uuid: str, path: str, size_bytes: int) -> None:
    """Grow a disk under the running guest (QEMU grows the file; the guest sees the new size)."""
    domain = host._domain(conn, domain_uuid)
    domain.blockResize(path, size_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)


def op_copy_start(conn, domain_uuid: str, path: str, target: str) -> None:
    """Start copying a running guest's disk (its whole backing chain) into `target`, a blank flat
    qcow2 of its size: QEMU mirrors the disk and keeps the copy in step with the guest's writes
    until `copy_status` ends it."""
    domain = host._domain(conn, domain_uuid)
    destination = ET.Element("disk", type="file")
    ET.SubElement(destination, "source", file=target)
    ET.SubElement(destination, "driver", type="qcow2")
    try:
        domain.blockCopy(
            path,
            ET.tostring(destination, encoding="unicode"),
            None,
            libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB | libvirt.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT,
        )
    except libvirt.libvirtError as error:
        if "block job" in str(error).lower() or "busy" in str(error).lower():
            raise host.HostError(
                "transient", "The disk is busy with another copy; we will retry.", f"{path}: {error}"
            ) from None
        raise


def op_copy_status(conn, domain_uuid: str, path: str, target: str, final: str, cancel: bool = False) -> str:
    """Where the copy is: "copying", "done" or "gone" (the job ended without a copy: the guest stopped or went).

    Once the mirror is in step ("ready"), ending the job without switching the guest over leaves
    `target` a consistent copy of the disk at that instant; it is then renamed to `final`."""
    if os.path.exists(final):
        return "done"
    domain = host._lookup(conn, domain_uuid)
    if domain is None or not domain.isActive():
        return "gone"
    host._settled(domain)
    live = [d for d in _disks(domain, 0) if _source(d) == path]
    mirror = live[0].find("mirror") if live else None
    if mirror is None:
        return "done" if os.path.exists(final) else "gone"
    if cancel:
        with contextlib.suppress(libvirt.libvirtError):
            domain.blockJobAbort(path, 0)
        return "gone"
    if mirror.get("ready") != "yes":
        return "copying"
    domain.blockJobAbort(path, 0)  # ends the mirror: the guest keeps its disk, `target` the copy
    os.replace(target, final)
    return "done"


def op_rebuild_disk(conn, domain_uuid: str, root: str, fresh: str, changes: dict) -> dict:
    """Put `fresh` (a new root disk the caller made) in place of the domain's root disk file `root`:
    a running domain is powered off for it (what its disk held is thrown away, so no clean
    shutdown is waited for) and started again, a stopped one stays stopped. `changes` go into
    the domain's persistent metadata; the same `rebuild-id` again changes nothing."""
    domain = host.domain(conn, domain_uuid)
    summary = host._summary(domain)
    persistent = host._persistent_meta(domain)
    if persistent.get("rebuild-id") == changes.get("rebuild-id"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(fresh)
        return summary
    if summary["state"] not in ("running", "stopped"):
        raise host._refuse(summary, "have its disk restored")
    was_active = summary["active"]
    if was_active:
        domain.destroy()
    os.replace(fresh, root)
    host._set_meta(domain, {**persistent, **changes}, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    if was_active:
        domain.create()
    return host._summary(domain)


OPS = {
    "rebuild_disk": op_rebuild_disk,
    "disk_users": op_disk_users,
    "attach_disk": op_attach_disk,
    "detach_disk": op_detach_disk,
    "resize_disk": op_resize_disk,
    "copy_start": op_copy_start,
    "copy_status": op_copy_status,
}
