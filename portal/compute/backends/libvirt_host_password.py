"""What runs against one libvirt host for a root password reset (`set_password`): libvirt's
virDomainSetUserPassword, which asks the QEMU guest agent in the running guest to set it.

Plain data in and out, as `libvirt_host.py`, and like it without Django or the portal:
`libvirt_host` loads this file by its path and then hands it `host` (itself).

Every domain the portal defines has the agent's channel (libvirt_xml); whether anything answers
on it is the image's business. libvirt shows it in the live XML: the channel's target says
`state='connected'` once the guest has opened its end of the port (the agent runs). Without that,
the call would wait for the agent's timeout and fail with an error that says little, so the refusal
is ours and plain. The password is only ever in the call's arguments: it is not logged here.
"""

from __future__ import annotations

import types
import xml.etree.ElementTree as ET

try:
    import libvirt
except ImportError:  # reported as a clear error when a zone uses this backend
    libvirt = None

host: types.ModuleType | None = None  # libvirt_host, which sets it once it has loaded this module

GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"  # as libvirt_xml names it
NO_AGENT = (
    "This server's image does not run the QEMU guest agent: reset the password from rescue mode "
    "or the console."
)


def agent_connected(live_xml: str) -> bool:
    """Whether the guest agent's channel is open in the guest (a pure function of the live XML)."""
    tree = ET.fromstring(live_xml)  # noqa: S314 — our own host's XML
    for channel in tree.findall("devices/channel"):
        target = channel.find("target")
        if target is not None and target.get("name") == GUEST_AGENT_CHANNEL:
            return target.get("state") == "connected"
    return False


def op_set_password(conn, domain_uuid: str, user: str, password: str) -> None:
    domain = host.domain(conn, domain_uuid)
    summary = host._summary(domain)
    if summary["state"] != "running":
        raise host.HostError(
            "rejected",
            f"The server is {summary['state']}: its password can be reset while it runs.",
            f"domain {domain_uuid} is {summary['state']}: set_password refused",
        )
    if not agent_connected(domain.XMLDesc(0)):
        raise host.HostError("rejected", NO_AGENT, f"domain {domain_uuid}: guest agent not connected")
    try:
        domain.setUserPassword(user, password, 0)
    except libvirt.libvirtError as error:
        if host._is(error, "VIR_ERR_AGENT_UNRESPONSIVE", "VIR_ERR_AGENT_UNSYNCED"):
            raise host.HostError(
                "rejected",
                "This server's guest agent did not answer: reset the password from rescue mode or "
                "the console, or try again in a minute.",
                f"domain {domain_uuid}: setUserPassword: {error}",
            ) from None
        raise host.HostError(
            "rejected",
            "This server's guest agent could not set the password.",
            f"domain {domain_uuid}: setUserPassword: {error}",
        ) from None


OPS = {"set_password": op_set_password}
