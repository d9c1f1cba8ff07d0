"""The graphical console of a real VM through the portal: a server launched in the libvirt
development zone (the busybox guest under QEMU, libvirt's embedded driver) has a VNC display on
the host's loopback, and the portal's websocket (the real ASGI application) relays it: the first
bytes are the RFB greeting. Skips (or fails under REQUIRE_SERVICES=1) without libvirt."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from portal.asgi import application
from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.backends import Capability, get_backend
from portal.compute.models import ConsoleSession, Instance, Operation
from portal.compute.services.consoles import console_grant
from portal.core.management.commands import libvirt_dev_zone
from tests.backends import libvirt_env
from tests.compute.test_libvirt_dev_zone import ZONE, dev_var, dev_zone, drive_slowly

__all__ = ["dev_var"]  # the fixture

# The consumer opens the display in a thread of its own: the data must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@async_to_sync
async def _rfb(path: str) -> tuple[str | None, bytes, bytes]:
    communicator = WebsocketCommunicator(
        application, path, headers=[(b"origin", b"http://localhost")], subprotocols=["binary"]
    )
    connected, subprotocol = await communicator.connect(timeout=30)
    assert connected
    greeting = await communicator.receive_from(timeout=30)
    await communicator.send_to(bytes_data=b"RFB 003.008\n")
    security = await communicator.receive_from(timeout=10)
    await communicator.disconnect()
    return subprotocol, greeting, security


def test_the_portal_relays_the_vnc_display_of_a_real_vm(dev_var, access, django_capture_on_commit_callbacks):
    dev_zone()
    zone = Zone.objects.get(code=ZONE)
    assert Capability.GRAPHICAL_CONSOLE in get_backend(zone.backend).capabilities(zone.code)
    req = services.LaunchRequest(
        name="vnc-vm",
        count=1,
        zone=zone,
        flavor=Flavor.objects.get(code="s-1vcpu-1gb"),
        image=Image.objects.get(name=libvirt_dev_zone.IMAGE),
        root_disk_gib=25,
    )
    with django_capture_on_commit_callbacks():  # no broker: this test is the worker
        batch = services.instance_launch(access=access, req=req)
    instance = Instance.objects.get(batch=batch)
    drive_slowly(Operation.objects.get(instance=instance, action="create"))
    instance.refresh_from_db()
    assert instance.status == "running", instance.fault_message

    grant = console_grant(access=access, instance=instance)
    assert grant.websocket_path and grant.graphical_websocket_path and grant.remote is None

    subprotocol, greeting, security = _rfb(grant.graphical_websocket_path)

    assert subprotocol == "binary"
    assert greeting.startswith(b"RFB 003.008\n")
    assert security[0] >= 1  # how many security types the display offers, then their numbers
    session = ConsoleSession.objects.get(pk=grant.session.pk)
    assert session.opened_at and session.closed_at
    opened = AuditEvent.objects.get(action=AuditAction.CONSOLE_OPENED)
    assert opened.changes["console"] == [None, "graphical"]
    libvirt_env.wait_for(
        lambda: AuditEvent.objects.filter(action=AuditAction.CONSOLE_CLOSED).exists(), what="the close"
    )
