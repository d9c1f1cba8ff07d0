"""What runs against one libvirt host for rescue mode (`rescue_server`, `unrescue_server`): the
domain is redefined to boot the zone's rescue kernel and initramfs with the server's own disk as
its second disk (vdb), and its normal definition is kept in our metadata until rescue is left.

Plain data in and out, as `libvirt_host.py`, and like it without Django or the portal:
`libvirt_host` loads this file by its path and then hands it `host` (itself).

The steps, each safe to repeat:

- rescue a running server: the ACPI power button, as a stop does (`stop-deadline`; the live
  metadata says `then-rescue`, the definition `rescue-pending`): "rescuing". Once it is off (the
  guest shut down, or the deadline passed and `op_status` pulled the plug), `finish` redefines it
  for rescue and starts it. A stopped server is redefined and started at once.
- in rescue (`rescue` in the metadata, which also holds `normal-definition`): "rescue".
- leave rescue: the power button again (`then-unrescue`, `unrescue-pending`): "unrescuing"; once off,
  `finish` defines the normal definition again and starts it: "running".

The rescue definition is the normal one with the kernel, initramfs and command line replaced and
the first two disks swapped: the cloud-init seed becomes vda (a rescue system that runs cloud-init
gets the server's SSH keys and name) and the root disk vdb. Their PCI addresses are swapped too, so
the guest, which names virtio disks in the order it finds them on the bus, sees the same.
"""

from __future__ import annotations

import contextlib
import json
import types
import xml.etree.ElementTree as ET

try:
    import libvirt
except ImportError:  # reported as a clear error when a zone uses this backend
    libvirt = None

host: types.ModuleType | None = None  # libvirt_host, which sets it once it has loaded this module

RESCUE_KEYS = ("rescue", "normal-definition", "rescue-pending", "rescue-boot", "unrescue-pending")


def with_meta(definition: str, meta: dict, namespace: str) -> str:
    """`definition` (domain XML) with our metadata element's facts replaced by `meta`."""
    tree = ET.fromstring(definition)  # noqa: S314 — our own host's XML
    metadata = tree.find("metadata")
    if metadata is None:
        metadata = ET.SubElement(tree, "metadata")
    server = metadata.find(f"{{{namespace}}}server")
    if server is None:
        server = ET.SubElement(metadata, f"{{{namespace}}}server")
    for child in list(server):
        server.remove(child)
    for key, value in meta.items():
        ET.SubElement(server, f"{{{namespace}}}{key}").text = str(value)
    return ET.tostring(tree, encoding="unicode")


def rescue_definition(normal: str, *, kernel: str, initrd: str, cmdline: str) -> str:
    """The rescue system's definition made from the server's normal one (a pure function)."""
    tree = ET.fromstring(normal)  # noqa: S314 — our own host's XML
    os_element = tree.find("os")
    for tag in ("boot", "kernel", "initrd", "cmdline", "loader", "nvram"):
        for element in os_element.findall(tag):
            os_element.remove(element)
    for tag, text in (("kernel", kernel), ("initrd", initrd), ("cmdline", cmdline)):
        ET.SubElement(os_element, tag).text = text
    disks = {}
    for disk in tree.findall("devices/disk"):
        target = disk.find("target")
        for boot in disk.findall("boot"):  # a boot order would point the firmware at the root disk
            disk.remove(boot)
        if target is not None and target.get("dev") in ("vda", "vdb"):
            disks[target.get("dev")] = disk
    if set(disks) == {"vda", "vdb"}:
        root, seed = disks["vda"], disks["vdb"]
        root.find("target").set("dev", "vdb")
        seed.find("target").set("dev", "vda")
        root_address, seed_address = root.find("address"), seed.find("address")
        for disk, old, new in ((root, root_address, seed_address), (seed, seed_address, root_address)):
            if old is not None:
                disk.remove(old)
            if new is not None:
                disk.append(new)
    return ET.tostring(tree, encoding="unicode")


def _define_and_start(conn, definition: str, meta: dict):
    ET.register_namespace(host.METADATA_PREFIX, host.METADATA_NS)
    domain = conn.defineXML(with_meta(definition, meta, host.METADATA_NS))
    domain.create()
    return domain


def _enter(conn, domain, boot: dict):
    normal = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    meta = {key: value for key, value in host._persistent_meta(domain).items() if key not in RESCUE_KEYS}
    definition = rescue_definition(normal, **boot)
    try:
        return _define_and_start(conn, definition, {**meta, "rescue": "1", "normal-definition": normal})
    except libvirt.libvirtError:
        # The rescue system would not start (a file missing on the host): the server gets its own
        # definition back, stopped, and the error goes to the portal.
        with contextlib.suppress(libvirt.libvirtError):
            conn.defineXML(with_meta(normal, meta, host.METADATA_NS))
        raise


def _leave(conn, domain):
    meta = host._persistent_meta(domain)
    normal = meta.get("normal-definition")
    if not normal:  # not in rescue after all: start it as it is
        domain.create()
        return domain
    return _define_and_start(conn, normal, {k: v for k, v in meta.items() if k not in RESCUE_KEYS})


def finish(conn, domain):
    """The second half of a rescue or unrescue, once the domain is off (called by op_status)."""
    meta = host._persistent_meta(domain)
    if meta.get("rescue-pending"):
        return _enter(conn, domain, json.loads(meta["rescue-boot"]))
    if meta.get("unrescue-pending"):
        return _leave(conn, domain)
    return domain


def op_rescue(conn, domain_uuid: str, kernel: str, initrd: str, cmdline: str, deadline: float) -> None:
    domain = host.domain(conn, domain_uuid)
    summary, meta = host._summary(domain), host._persistent_meta(domain)
    if summary["state"] in ("rescue", "rescuing"):
        return
    boot = {"kernel": kernel, "initrd": initrd, "cmdline": cmdline}
    if summary["state"] == "stopped":  # at once; or the rescue system that powered itself off
        domain.create() if meta.get("rescue") else _enter(conn, domain, boot)
        return
    if summary["state"] != "running":
        raise host._refuse(summary, "enter rescue mode")
    pending = {**meta, "rescue-pending": "1", "rescue-boot": json.dumps(boot)}
    host._set_meta(domain, pending, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    host._power_off(domain, summary["meta"], deadline, **{"then-rescue": "1"})


def op_unrescue(conn, domain_uuid: str, deadline: float) -> None:
    domain = host.domain(conn, domain_uuid)
    summary, meta = host._summary(domain), host._persistent_meta(domain)
    if summary["state"] == "unrescuing" or not (meta.get("rescue") or meta.get("rescue-pending")):
        return  # leaving already, or not in rescue: nothing to leave
    if summary["state"] == "rescuing":
        raise host._refuse(summary, "leave rescue mode")
    if not summary["active"]:  # the rescue system powered itself off
        _leave(conn, domain)
        return
    host._set_meta(domain, {**meta, "unrescue-pending": "1"}, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    host._power_off(domain, summary["meta"], deadline, **{"then-unrescue": "1"})


OPS = {"rescue": op_rescue, "unrescue": op_unrescue}
