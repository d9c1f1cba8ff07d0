"""The libvirt backend's serial console on a real VM (the busybox guest under QEMU, libvirt's
embedded driver): virDomainOpenConsole through a virStream, held by a helper process, gives the
guest's root shell. Skips (or fails under REQUIRE_SERVICES=1) without libvirt."""

from __future__ import annotations

import time

import pytest

from portal.compute.backends import Capability, ConsoleClosed
from tests.backends.libvirt_env import wait_for
from tests.backends.test_libvirt import B, booted, spec


def read_until(console, text: bytes, timeout: float = 20) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, f"{text!r} never came: {seen[-500:]!r}"
        seen += console.read(0.5)
    return seen


@pytest.mark.django_db
def test_the_serial_console_of_a_real_vm_gives_its_shell(libvirt_backend):
    backend, zone = libvirt_backend
    assert Capability.SERIAL_CONSOLE in backend.capabilities(zone)
    server = backend.create_server(spec(zone, name="console-vm"))
    wait_for(lambda: booted(backend, server.backend_id), what="the guest's boot marker")

    console = backend.open_serial_console(server.backend_id)
    try:
        console.write(b"\r")
        read_until(console, b"console-vm:/# ")
        console.write(b"echo $((6*7))\r")
        assert b"\r\n42\r\n" in read_until(console, b"42\r\n")
    finally:
        console.close()
    with pytest.raises(ConsoleClosed):
        console.read(0.1)
    # The root is free again: the backend's other calls go on.
    assert backend.get_server(server.backend_id).state == B.RUNNING
