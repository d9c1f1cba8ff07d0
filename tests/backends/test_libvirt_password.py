"""Root password reset on libvirt: the guest agent's channel in every definition, the refusal when
no agent is connected (libvirt's test driver, and a real guest whose agent was stopped), and a
real VM under QEMU (the embedded driver, libvirt_env) whose busybox guest agent takes the password
from virDomainSetUserPassword: its serial login accepts the new password and refuses the old."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from portal.compute.backends.base import Capability, Rejected
from portal.compute.backends.libvirt_host_password import GUEST_AGENT_CHANNEL, NO_AGENT, agent_connected
from portal.compute.backends.libvirt_xml import GUEST_AGENT_CHANNEL as XML_CHANNEL
from tests.backends import libvirt_env
from tests.backends.libvirt_env import wait_for
from tests.backends.test_libvirt import UNIT_ZONE, booted, make_backend, spec, unit_spec, unit_tools
from tests.backends.test_libvirt_console import read_until
from tests.backends.test_libvirt_rescue import normal_xml

libvirt_backend = libvirt_env.libvirt_backend
__all__ = ["make_backend", "unit_tools"]  # fixtures


def test_every_definition_has_the_guest_agents_channel():
    tree = ET.fromstring(normal_xml())  # noqa: S314 — our own XML
    channels = tree.findall("devices/channel")
    assert [c.get("type") for c in channels] == ["unix"]
    target = channels[0].find("target")
    assert (target.get("type"), target.get("name")) == ("virtio", "org.qemu.guest_agent.0")
    assert GUEST_AGENT_CHANNEL == XML_CHANNEL  # the host module can't import the portal's


def test_the_agent_counts_as_there_only_when_its_channel_says_connected():
    def live(state: str) -> str:
        return (
            "<domain><devices><channel type='unix'><source mode='bind' path='/x.sock'/>"
            f"<target type='virtio' name='org.qemu.guest_agent.0' {state}/></channel></devices></domain>"
        )

    assert agent_connected(live("state='connected'"))
    assert not agent_connected(live("state='disconnected'"))
    assert not agent_connected(live(""))
    assert not agent_connected("<domain><devices/></domain>")


def test_a_server_without_a_connected_agent_gets_a_plain_refusal(make_backend):
    backend = make_backend()
    assert Capability.PASSWORD_RESET in backend.capabilities(UNIT_ZONE)
    server = backend.create_server(unit_spec())  # the test driver's guests run no agent
    with pytest.raises(Rejected) as refused:
        backend.set_password(server.backend_id, "root", "n3w-Passw0rd")
    assert refused.value.user_message == NO_AGENT
    assert "rescue mode or the console" in refused.value.user_message


def test_a_zone_whose_images_run_no_agent_says_so(make_backend):
    backend = make_backend(zone_settings={"password_reset": False})
    assert Capability.PASSWORD_RESET not in backend.capabilities(UNIT_ZONE)
    server = backend.create_server(unit_spec())
    with pytest.raises(Rejected, match="not available"):
        backend.set_password(server.backend_id, "root", "n3w-Passw0rd")


def login_prompt(console, name: str) -> None:
    """Wait for the login prompt, pressing Enter now and then: under load the prompt has been seen
    to come before the console relayed anything (an empty line makes login ask again)."""
    for _ in range(4):
        try:
            read_until(console, f"{name} login: ".encode(), timeout=10)
            return
        except AssertionError:
            console.write(b"\r")
    read_until(console, f"{name} login: ".encode(), timeout=10)


def log_in(console, name: str, password: bytes) -> bytes:
    """At the login prompt: root and `password`; what the console showed after it."""
    login_prompt(console, name)
    console.write(b"root\r")
    read_until(console, b"Password: ")
    console.write(password + b"\r")
    console.write(b"echo LOGGED-IN-$((6*7))\r")
    return read_until(console, b"LOGGED-IN-42", timeout=15)


@pytest.mark.django_db
def test_a_real_vm_takes_its_new_root_password_through_its_guest_agent(libvirt_backend):
    backend, zone = libvirt_backend
    server = backend.create_server(spec(zone, name="pw-vm"))
    sid = server.backend_id
    wait_for(lambda: booted(backend, sid), what="the guest's boot marker")

    def reset(password: str) -> bool:
        try:
            backend.set_password(sid, "root", password)
        except Rejected as refused:
            if refused.user_message == NO_AGENT:  # the agent has not opened its port yet
                return False
            raise
        return True

    # The embedded driver's root has one holder at a time: the console is closed for each reset.
    wait_for(lambda: reset("first-Pass-1"), timeout=30, what="the guest agent taking the password")
    console = backend.open_serial_console(sid)
    try:
        console.write(b"\r")
        read_until(console, b"pw-vm:/# ")  # the shell started before root had a password
        console.write(b"exit\r")
        log_in(console, "pw-vm", b"first-Pass-1")
    finally:
        console.close()

    assert reset("second-Pass-2")
    console = backend.open_serial_console(sid)
    try:
        console.write(b"\r")
        read_until(console, b"# ")  # the shell root logged in to above
        console.write(b"exit\r")
        login_prompt(console, "pw-vm")
        console.write(b"root\r")
        read_until(console, b"Password: ")
        console.write(b"first-Pass-1\r")  # the old one
        read_until(console, b"Login incorrect", timeout=15)
        log_in(console, "pw-vm", b"second-Pass-2")
        # The agent stopped (an image without one): the plain refusal, not the agent's timeout.
        console.write(b"kill $(ps | awk '/[p]ortal-guest-agent/ {print $1}'); echo STOPPED-$((6*7))\r")
        read_until(console, b"STOPPED-42")
    finally:
        console.close()
    wait_for(lambda: not reset("third-Pass-3"), timeout=30, what="the channel to show the agent gone")
