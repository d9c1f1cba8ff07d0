"""The libvirt backend's graphical console: the domain's VNC display on the host's loopback, found
in its live XML, opened as a byte stream (libvirt_display.py). Unit tests of the definition, the
port lookup and the ways to a host; then a real VM (the busybox guest under QEMU, libvirt's
embedded driver) whose display answers RFB, through the backend and through the portal's
websocket. The VM tests skip (or fail under REQUIRE_SERVICES=1) without libvirt."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest

from portal.compute.backends import BackendState, Capability, ConsoleClosed, Rejected
from portal.compute.backends.libvirt import DEFAULTS
from portal.compute.backends.libvirt_display import display_reachable, ssh_command
from portal.compute.backends.libvirt_host import vnc_display
from portal.compute.backends.libvirt_xml import Disks, domain_xml
from tests.backends.libvirt_env import wait_for
from tests.backends.test_libvirt import UNIT_ZONE, booted, make_backend, spec, unit_spec, unit_tools

__all__ = ["make_backend", "unit_tools"]  # the fixtures

DISKS = Disks(root="/d/root.qcow2", seed="/d/seed.iso", console_log="/d/console.log", directory="/d")


def _definition(**settings) -> ET.Element:
    wanted = unit_spec()
    config = DEFAULTS | {"domain_type": "qemu"} | settings
    text = domain_xml(
        spec=wanted, domain_uuid=wanted.idempotency_key, config=config, disks=DISKS, memory_mib=128
    )
    return ET.fromstring(text)  # noqa: S314 — our own XML


def test_the_definition_asks_for_a_vnc_display_on_the_loopback_with_a_port_libvirt_picks():
    devices = _definition().find("devices")

    graphics = devices.find("graphics")
    assert (graphics.get("type"), graphics.get("listen"), graphics.get("autoport")) == (
        "vnc",
        "127.0.0.1",
        "yes",
    )
    assert [(e.get("type"), e.get("address")) for e in graphics.findall("listen")] == [
        ("address", "127.0.0.1")
    ]
    assert devices.find("video/model").get("type") == "vga"
    assert _definition(arch="aarch64").find("devices/video/model").get("type") == "virtio"
    # The zone turned it off: no display at all.
    assert _definition(graphical_console=False).find("devices/graphics") is None
    assert _definition(graphical_console=False).find("devices/video") is None


LIVE = """<domain type='qemu'><devices>
  <serial type='pty'><source path='/dev/pts/3'/></serial>
  <graphics type='vnc' port='{port}' autoport='yes' listen='127.0.0.1'>
    <listen type='address' address='127.0.0.1'/>
  </graphics>
</devices></domain>"""


def test_the_display_port_is_read_from_the_live_definition():
    assert vnc_display(LIVE.format(port=5903)) == {"host": "127.0.0.1", "port": 5903}
    # Defined, not started (the port is -1 until libvirt picks one), and a domain without one.
    assert vnc_display(LIVE.format(port=-1)) is None
    assert vnc_display("<domain><devices><graphics type='spice' port='5901'/></devices></domain>") is None
    assert vnc_display("<domain><devices/></domain>") is None


def test_which_hosts_the_portal_can_reach_a_display_on():
    assert display_reachable("qemu:///system")
    assert display_reachable("qemu:///embed?root=/tmp/x")
    assert display_reachable("qemu+ssh://ops@kvm1/system")
    assert not display_reachable("qemu+tcp://kvm1/system")
    assert not display_reachable("qemu+tls://kvm1/system")
    assert not display_reachable("qemu://kvm1/system")  # TLS, too


def test_a_display_on_a_remote_host_goes_through_ssh_to_its_loopback():
    command = ssh_command("qemu+ssh://ops@kvm1:2222/system?keyfile=/etc/portal/id_ed25519", "127.0.0.1", 5901)

    assert command[0] == "ssh" and "BatchMode=yes" in command
    assert command[command.index("-p") + 1] == "2222" and command[command.index("-l") + 1] == "ops"
    assert command[command.index("-i") + 1] == "/etc/portal/id_ed25519"
    assert command[-4:] == ["-W", "127.0.0.1:5901", "--", "kvm1"]


def test_the_zone_declares_the_graphical_console_unless_its_settings_say_not(make_backend):
    assert Capability.GRAPHICAL_CONSOLE in make_backend().capabilities(UNIT_ZONE)
    off = make_backend(zone_settings={"graphical_console": False})
    assert Capability.GRAPHICAL_CONSOLE not in off.capabilities(UNIT_ZONE)
    tls = make_backend(hosts=["qemu+tls://kvm1/system"])
    assert Capability.GRAPHICAL_CONSOLE not in tls.capabilities(UNIT_ZONE)
    with pytest.raises(Rejected, match="not available"):
        off.open_graphical_console(f"{UNIT_ZONE}/localhost/0b3a8f46-5a43-4c39-9a0e-2f6d2a8b1c55")


# --- a real VM -------------------------------------------------------------------------------


def read_until(stream, text: bytes, timeout: float = 20) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, f"{text!r} never came: {seen[-200:]!r}"
        seen += stream.read(0.5)
    return seen


@pytest.mark.django_db
def test_the_display_of_a_real_vm_answers_rfb(libvirt_backend):
    backend, zone = libvirt_backend
    assert Capability.GRAPHICAL_CONSOLE in backend.capabilities(zone)
    server = backend.create_server(spec(zone, name="vnc-vm"))
    wait_for(lambda: booted(backend, server.backend_id), what="the guest's boot marker")
    config, uri, domain_uuid, _summary = backend._locate(server.backend_id)
    display = backend._host(config, uri, "display", domain_uuid=domain_uuid)
    assert display["host"] == "127.0.0.1" and display["port"] >= 5900

    stream = backend.open_graphical_console(server.backend_id)
    try:
        assert read_until(stream, b"\n").startswith(b"RFB 003.008\n")
        stream.write(b"RFB 003.008\n")
        security = read_until(stream, b"\x01")  # a list of security types: 1 is "None"
        assert security[0] >= 1
    finally:
        stream.close()
    with pytest.raises(ConsoleClosed):
        stream.read(0.1)
    backend.stop_server(server.backend_id)
    wait_for(
        lambda: backend.get_server(server.backend_id).state == BackendState.STOPPED, what="the guest to stop"
    )
    with pytest.raises(Rejected, match="while it runs"):
        backend.open_graphical_console(server.backend_id)
