"""Rescue mode on libvirt: the rescue definition (a pure function of the normal one), the calls'
steps on libvirt's test driver, and a real VM under QEMU (the embedded driver, libvirt_env) that
boots the rescue initramfs, sees its own disk as /dev/vdb and keeps what was written there."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from portal.compute.backends.base import BackendState, Capability, Rejected
from portal.compute.backends.libvirt import DEFAULTS
from portal.compute.backends.libvirt_guest import RESCUE_MARKER
from portal.compute.backends.libvirt_host import METADATA_NS
from portal.compute.backends.libvirt_host_rescue import rescue_definition, with_meta
from portal.compute.backends.libvirt_xml import Disks, domain_xml
from tests.backends import libvirt_env
from tests.backends.libvirt_env import MARKER, wait_for
from tests.backends.test_libvirt import UNIT_ZONE, console_log, make_backend, spec, unit_spec, unit_tools
from tests.backends.test_libvirt_console import read_until

libvirt_backend = libvirt_env.libvirt_backend
libvirt_root = libvirt_env.libvirt_root
__all__ = ["make_backend", "unit_tools"]  # fixtures

B = BackendState
RESCUE_SETTINGS = {"rescue_kernel": "/rescue/vmlinuz", "rescue_initrd": "/rescue/initrd.img"}


def normal_xml() -> str:
    wanted = unit_spec()
    disks = Disks(root="/d/root.qcow2", seed="/d/seed.iso", console_log="/d/console.log", directory="/d")
    config = DEFAULTS | {"domain_type": "kvm", "kernel": "/boot/vmlinuz", "initrd": "/boot/initrd"}
    tree = ET.fromstring(  # noqa: S314 — our own XML
        domain_xml(
            spec=wanted, domain_uuid=wanted.idempotency_key, config=config, disks=disks, memory_mib=512
        )
    )
    # As libvirt writes it back once defined: each disk has its PCI address.
    for slot, disk in enumerate(tree.findall("devices/disk"), start=3):
        ET.SubElement(
            disk, "address", type="pci", domain="0x0000", bus="0x00", slot=f"0x0{slot}", function="0x0"
        )
    return ET.tostring(tree, encoding="unicode")


def test_the_rescue_definition_boots_the_rescue_files_with_the_own_disk_as_vdb():
    normal = normal_xml()
    rescue = ET.fromstring(  # noqa: S314
        rescue_definition(
            normal, kernel="/rescue/vmlinuz", initrd="/rescue/initrd.img", cmdline="console=ttyS0"
        )
    )
    assert rescue.findtext("os/kernel") == "/rescue/vmlinuz"
    assert rescue.findtext("os/initrd") == "/rescue/initrd.img"
    assert rescue.findtext("os/cmdline") == "console=ttyS0"
    assert len(rescue.findall("os/kernel")) == 1 and rescue.find("os/boot") is None
    by_dev = {d.find("target").get("dev"): d for d in rescue.findall("devices/disk")}
    assert by_dev["vdb"].find("source").get("file") == "/d/root.qcow2"  # its own disk, writable
    assert by_dev["vdb"].find("readonly") is None
    assert by_dev["vda"].find("source").get("file") == "/d/seed.iso"
    # The PCI slots are swapped with the names: the guest finds the seed first, its disk second.
    assert by_dev["vda"].find("address").get("slot") == "0x03"
    assert by_dev["vdb"].find("address").get("slot") == "0x04"
    # The serial console and its log are as before: the customer repairs from there.
    assert rescue.find("devices/serial/log").get("file") == "/d/console.log"

    marked = ET.fromstring(with_meta(normal, {"rescue": "1", "normal-definition": normal}, METADATA_NS))  # noqa: S314
    ours = marked.find(f"metadata/{{{METADATA_NS}}}server")
    assert ours.findtext(f"{{{METADATA_NS}}}rescue") == "1"
    assert ours.findtext(f"{{{METADATA_NS}}}normal-definition") == normal
    assert ours.find(f"{{{METADATA_NS}}}instance-id") is None  # replaced: the caller passes every fact


def test_without_rescue_files_the_zone_declares_no_rescue(make_backend):
    backend = make_backend()
    assert Capability.RESCUE not in backend.capabilities(UNIT_ZONE)
    assert "not set up a rescue system" in backend.absent_reason(UNIT_ZONE, Capability.RESCUE)
    server = backend.create_server(unit_spec())
    with pytest.raises(Rejected, match="Rescue mode is not available in lv-unit-1"):
        backend.rescue_server(server.backend_id)
    only_kernel = make_backend(zone_settings={"rescue_kernel": "/rescue/vmlinuz"})
    assert Capability.RESCUE not in only_kernel.capabilities(UNIT_ZONE)


def _definition(backend, server) -> ET.Element:
    import libvirt

    conn = backend.hosts.connection(backend._config(UNIT_ZONE)["hosts"][0])
    domain = conn.lookupByUUIDString(server.idempotency_key)
    return ET.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))  # noqa: S314


def test_rescue_and_unrescue_on_the_test_driver(make_backend):
    backend = make_backend(zone_settings=RESCUE_SETTINGS)
    assert Capability.RESCUE in backend.capabilities(UNIT_ZONE)
    server = backend.create_server(unit_spec())
    sid = server.backend_id
    normal_kernel = _definition(backend, server).findtext("os/kernel")

    backend.unrescue_server(sid)  # not in rescue: nothing to leave
    assert backend.get_server(sid).state == B.RUNNING
    backend.rescue_server(sid)  # the test driver is off at once; the next get_server boots rescue
    assert backend.get_server(sid).state == B.RESCUE
    backend.rescue_server(sid)  # in rescue already: nothing
    rescued = _definition(backend, server)
    assert rescued.findtext("os/kernel") == "/rescue/vmlinuz"
    assert rescued.findtext("os/cmdline") == "console=ttyS0"
    disks = {
        d.find("target").get("dev"): d.find("source").get("file") for d in rescued.findall("devices/disk")
    }
    assert disks["vdb"].endswith("/root.qcow2") and disks["vda"].endswith("/seed.iso")
    with pytest.raises(Rejected):
        backend.stop_server(sid)

    backend.unrescue_server(sid)
    assert backend.get_server(sid).state == B.RUNNING
    backend.unrescue_server(sid)  # left already: nothing
    normal = _definition(backend, server)
    assert normal.findtext("os/kernel") == normal_kernel
    disks = {
        d.find("target").get("dev"): d.find("source").get("file") for d in normal.findall("devices/disk")
    }
    assert disks["vda"].endswith("/root.qcow2")
    assert normal.find(f"metadata/{{{METADATA_NS}}}server/{{{METADATA_NS}}}normal-definition") is None
    assert backend.get_server(sid).idempotency_key == server.idempotency_key  # its facts kept

    # A stopped server boots the rescue system at once.
    backend.stop_server(sid)
    assert backend.get_server(sid).state == B.STOPPED
    backend.rescue_server(sid)
    assert backend.get_server(sid).state == B.RESCUE
    backend.delete_server(sid)


# --- A real VM: the embedded QEMU driver, software emulation --------------------------------


def _state(backend, sid: str):
    return backend.get_server(sid).state  # polling is what moves the embedded driver along


@pytest.mark.django_db
def test_a_real_vm_boots_its_rescue_system_with_its_own_disk_and_leaves_it(libvirt_backend, libvirt_root):
    backend, zone = libvirt_backend
    assert Capability.RESCUE in backend.capabilities(zone)
    server = backend.create_server(spec(zone, name="sick-vm"))
    sid = server.backend_id
    wait_for(
        lambda: _state(backend, sid) == B.RUNNING and MARKER in backend.console_output(sid),
        what="the boot marker",
    )

    backend.rescue_server(sid)
    assert _state(backend, sid) in (B.RESCUING, B.RESCUE)
    backend.rescue_server(sid)  # asked again: nothing more
    wait_for(lambda: RESCUE_MARKER in backend.console_output(sid), timeout=60, what="the rescue marker")
    assert _state(backend, sid) == B.RESCUE
    assert f"{RESCUE_MARKER} sick-vm disks: /dev/vda /dev/vdb" in backend.console_output(sid)

    # The customer repairs from the serial console: the own disk is /dev/vdb, writable.
    console = backend.open_serial_console(sid)
    try:
        console.write(b"\r")
        read_until(console, b"sick-vm:/# ", timeout=30)
        console.write(
            b"echo repaired-in-rescue | dd of=/dev/vdb conv=notrunc 2>/dev/null; sync; echo done-$((6*7))\r"
        )
        read_until(console, b"done-42", timeout=30)
    finally:
        console.close()

    backend.unrescue_server(sid)
    assert _state(backend, sid) in (B.UNRESCUING, B.RUNNING)
    backend.unrescue_server(sid)  # leaving already: nothing
    wait_for(
        lambda: _state(backend, sid) == B.RUNNING and console_log(libvirt_root, sid).count(MARKER) >= 2,
        timeout=60,
        what="the normal boot after rescue",
    )

    # Booted from its own disk again (vda), with what was written in rescue on it.
    console = backend.open_serial_console(sid)
    try:
        console.write(b"\r")
        read_until(console, b"sick-vm:/# ", timeout=30)
        console.write(b"head -c 18 /dev/vda; echo\r")
        assert b"repaired-in-rescue" in read_until(console, b"repaired-in-rescue\r\n", timeout=30)
    finally:
        console.close()
    backend.delete_server(sid)


def test_a_rescue_system_that_does_not_start_leaves_the_server_as_it_was(make_backend, monkeypatch):
    import libvirt

    from portal.compute.backends.base import BackendError

    backend = make_backend(zone_settings=RESCUE_SETTINGS)
    server = backend.create_server(unit_spec())
    backend.stop_server(server.backend_id)
    normal_kernel = _definition(backend, server).findtext("os/kernel")

    def refuse(domain, *args):
        raise libvirt.libvirtError("Cannot access storage file '/rescue/vmlinuz': No such file or directory")

    with monkeypatch.context() as patch:
        patch.setattr(libvirt.virDomain, "create", refuse)
        with pytest.raises(BackendError):
            backend.rescue_server(server.backend_id)
    assert backend.get_server(server.backend_id).state == B.STOPPED
    assert _definition(backend, server).findtext("os/kernel") == normal_kernel
    backend.rescue_server(server.backend_id)  # the file is there now
    assert backend.get_server(server.backend_id).state == B.RESCUE
