"""The serial console of a server in an OpenStack zone, the whole way: the server page's ticket,
the portal's websocket (the real ASGI application), Nova's remote console and the cloud's serial
proxy (the fake's, on 127.0.0.1), and back. The rules at the portal's end are the same for every
cloud (test_console_sessions.py); this checks that an OpenStack zone reaches them."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.compute.backends import get_backend
from portal.compute.models import ConsoleSession
from tests.backends.fake_openstack import fake_openstack  # noqa: F401 — the fixture
from tests.backends.openstack_zone import openstack_server, openstack_zone  # noqa: F401 — the fixture
from tests.compute.test_console_sessions import _closed, _communicator, _until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(openstack_zone, access):  # noqa: F811 — the fixture imported above
    return openstack_server(access, openstack_zone, "os-web-1")


def _open_url(instance) -> str:
    project = instance.project
    return reverse(
        "compute:instance_console_open", args=[project.organization.slug, project.slug, instance.pk]
    )


@async_to_sync
async def _login_and_run(path: str, command: str, answer: str) -> str:
    communicator = _communicator(path)
    assert (await communicator.connect())[0]
    assert json.loads((await communicator.receive_output(timeout=5))["text"]) == {
        "type": "opened",
        "server": "os-web-1",
    }
    await communicator.send_to(bytes_data=b"\r")  # a serial line shows its prompt when asked
    printed = await _until(communicator, "os-web-1 login: ")
    for line in ("dana\r", "secret\r", command + "\r"):
        await communicator.send_to(bytes_data=line.encode())
    printed += await _until(communicator, answer)
    await communicator.disconnect()
    return printed


def test_a_ticket_opens_the_openstack_servers_serial_console(server, client_as, member, fake_openstack):  # noqa: F811
    answer = client_as(member).post(_open_url(server))
    assert answer.status_code == 200, answer.content
    path = answer.json()["websocket_url"].removeprefix("ws://testserver")

    printed = _login_and_run(path, "echo hello from nova", "hello from nova\r\n")

    assert "dana@os-web-1:~$ echo hello from nova\r\nhello from nova\r\n" in printed
    # The cloud's proxy was reached by the portal, not by the browser: the ticket was the portal's.
    assert fake_openstack.compute.consoles.connections == [{"subprotocol": "binary", "origin": None}]
    session = ConsoleSession.objects.get()
    assert session.opened_at and session.closed_at and session.close_reason == "Closed by the user."
    assert AuditEvent.objects.filter(action=AuditAction.CONSOLE_CLOSED).count() == 1


@async_to_sync
async def _open_then_stop(path: str, backend_id: str) -> tuple[str, int]:
    communicator = _communicator(path)
    assert (await communicator.connect())[0]
    await communicator.receive_output(timeout=5)  # opened
    await communicator.send_to(bytes_data=b"\r")
    await _until(communicator, "login: ")
    # Stopped in the cloud behind the portal's back (the portal's own stop closes it earlier):
    # the serial proxy's connection ends, and with it the session.
    await database_sync_to_async(get_backend("openstack").stop_server)(backend_id)
    result = await _closed(communicator)
    # The consumer records the end just after its last frame: give it the time before hanging up
    # (disconnect cancels it after a second, which a busy machine may need).
    for _ in range(100):
        if await database_sync_to_async(ConsoleSession.objects.filter(closed_at__isnull=False).exists)():
            break
        await asyncio.sleep(0.1)
    await communicator.disconnect()
    return result


def test_the_session_ends_when_the_cloud_closes_the_console(server, client_as, owner):
    path = client_as(owner).post(_open_url(server)).json()["websocket_url"].removeprefix("ws://testserver")

    reason, code = _open_then_stop(path, server.backend_id)

    assert (code, reason) == (4000, "The server's console closed (it stopped or restarted).")
    assert ConsoleSession.objects.get().close_reason == reason


def test_a_zone_without_the_setting_offers_no_console(server, client_as, owner, openstack_zone):  # noqa: F811
    openstack_zone.backend_settings = {
        k: v for k, v in openstack_zone.backend_settings.items() if k != "serial_console"
    }
    openstack_zone.save(update_fields=["backend_settings"])
    project = server.project
    detail = reverse("compute:instance_detail", args=[project.organization.slug, project.slug, server.pk])

    page = client_as(owner).get(detail).content.decode()
    answer = client_as(owner).post(_open_url(server))

    assert "Open serial console" not in page
    assert "Interactive serial consoles are not available in osl1-a. Below is what the server printed" in page
    assert answer.status_code == 409
    assert answer.json()["error"] == "Interactive serial consoles are not available in osl1-a."
    assert not ConsoleSession.objects.exists()
