"""POST /instances/{id}/console on a server in an OpenStack zone: the API's ticket opens the
portal's websocket from a script (no Origin), and the portal reaches the cloud's serial proxy; a
zone that does not offer it is a 409 in plain words."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from portal.asgi import application
from portal.audit.models import AuditAction, AuditEvent
from portal.compute.models import ConsoleSession
from tests.api.conftest import assert_problem
from tests.backends.fake_openstack import fake_openstack  # noqa: F401 — the fixture
from tests.backends.openstack_zone import openstack_server, openstack_zone  # noqa: F401 — the fixture

pytestmark = pytest.mark.django_db(transaction=True)


@async_to_sync
async def _prompt(path: str) -> bytes:
    communicator = WebsocketCommunicator(application, path)  # no Origin header: a script
    assert (await communicator.connect())[0]
    assert json.loads((await communicator.receive_output(timeout=5))["text"])["type"] == "opened"
    await communicator.send_to(bytes_data=b"\r")
    printed = b""
    while b"login: " not in printed:
        printed += (await communicator.receive_output(timeout=5))["bytes"]
    await communicator.disconnect()
    return printed


def test_an_api_ticket_opens_an_openstack_servers_console(openstack_zone, access, org, member, token_for):  # noqa: F811
    server = openstack_server(access, openstack_zone, "os-api-1")
    _, api = token_for(member, org)

    answer = api.post(f"instances/{server.pk}/console")

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["console_url"] is None  # the portal relays the console: no address of the cloud's
    printed = _prompt(body["websocket_url"].removeprefix("ws://testserver"))
    assert b"Debian GNU/Linux 12 os-api-1 ttyS0\r\n\r\nos-api-1 login: " in printed
    assert ConsoleSession.objects.get().user == member

    openstack_zone.backend_settings = {**openstack_zone.backend_settings, "serial_console": False}
    openstack_zone.save(update_fields=["backend_settings"])
    refused = assert_problem(api.post(f"instances/{server.pk}/console"), 409)
    assert refused["detail"] == "Interactive serial consoles are not available in osl1-a."


def test_an_api_caller_gets_the_clouds_novnc_address_where_the_zone_offers_it(
    openstack_zone,  # noqa: F811
    access,
    org,
    member,
    token_for,
):
    openstack_zone.backend_settings = {**openstack_zone.backend_settings, "graphical_console": True}
    openstack_zone.save(update_fields=["backend_settings"])
    server = openstack_server(access, openstack_zone, "os-api-vnc")
    _, api = token_for(member, org)

    body = api.post(f"instances/{server.pk}/console").json()

    assert "/vnc_lite.html?path=%3Ftoken%3D" in body["console_url"]
    assert body["console_protocol"] == "vnc"
    assert body["websocket_url"]  # the serial console too: the zone has both
    issued = AuditEvent.objects.get(action=AuditAction.REMOTE_CONSOLE_ISSUED)
    assert (issued.actor, issued.target_id, issued.changes) == (
        member,
        str(server.pk),
        {"protocol": [None, "vnc"]},
    )
    assert body["console_url"] not in str(issued.changes)  # the token is never written down
