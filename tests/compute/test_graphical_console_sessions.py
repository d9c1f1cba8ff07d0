"""The graphical console's websocket (a display the portal relays to noVNC, as libvirt's VNC is):
the serial console's one-time ticket and rules, RFB in binary frames both ways, the "binary"
subprotocol when asked for, and refusals and ends said in the close frame (a VNC client reads every
frame as RFB). The cloud's display here is a stand-in speaking the first bytes of RFB; the real
VM's display is tested in tests/compute/test_libvirt_graphical_console.py."""

from __future__ import annotations

import queue

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import reverse

from portal.asgi import application
from portal.audit.models import AuditAction, AuditEvent
from portal.compute import services
from portal.compute.backends import Capability, ConsoleClosed, ConsoleStream
from portal.compute.backends.simulated import SimulatedBackend
from portal.compute.models import ConsoleSession, Instance, InstanceStatus
from portal.tenancy.access import project_access
from portal.tenancy.models import Membership, Role
from tests.compute.test_console_sessions import _grant, _open_url, server

__all__ = ["server"]  # the fixture

pytestmark = pytest.mark.django_db(transaction=True)

GREETING = b"RFB 003.008\n"


class Display(ConsoleStream):
    """A VNC server's first steps: its greeting, then security type None for a client's version."""

    written: list[bytes] = []

    def __init__(self) -> None:
        self._out: queue.Queue = queue.Queue()
        self._out.put(GREETING)
        self._closed = False

    def read(self, timeout: float) -> bytes:
        if self._closed:
            raise ConsoleClosed("Closed.")
        try:
            return self._out.get(timeout=timeout)
        except queue.Empty:
            return b""

    def write(self, data: bytes) -> None:
        Display.written.append(data)
        if data == GREETING:
            self._out.put(b"\x01\x01")

    def close(self) -> None:
        self._closed = True


@pytest.fixture(autouse=True)
def display(monkeypatch):
    """The simulated cloud relays a display (it has no graphical console of its own otherwise)."""
    kinds = SimulatedBackend.capabilities
    monkeypatch.setattr(SimulatedBackend, "RELAYS_GRAPHICAL_CONSOLE", True)
    monkeypatch.setattr(
        SimulatedBackend,
        "capabilities",
        lambda self, zone: kinds(self, zone) | {Capability.GRAPHICAL_CONSOLE},
    )
    monkeypatch.setattr(SimulatedBackend, "open_graphical_console", lambda self, backend_id: Display())
    Display.written = []


def _communicator(path: str, subprotocols=("binary",)) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        application, path, headers=[(b"origin", b"http://localhost")], subprotocols=list(subprotocols)
    )


async def _closed(communicator) -> tuple[str, int]:
    while True:
        message = await communicator.receive_output(timeout=5)
        assert message.get("text") is None, "a VNC client reads every frame as RFB: no text frames"
        if message["type"] == "websocket.close":
            return message.get("reason", ""), message["code"]


@async_to_sync
async def _handshake(path: str, subprotocols=("binary",)) -> tuple[str | None, bytes, bytes]:
    communicator = _communicator(path, subprotocols)
    connected, subprotocol = await communicator.connect()
    assert connected
    greeting = await communicator.receive_from(timeout=5)
    await communicator.send_to(bytes_data=GREETING)
    await communicator.send_to(text_data="not RFB")  # dropped
    security = await communicator.receive_from(timeout=5)
    await communicator.disconnect()
    return subprotocol, greeting, security


@async_to_sync
async def _refused(path: str) -> tuple[str, int]:
    communicator = _communicator(path)
    connected, _ = await communicator.connect()
    assert connected  # accepted, so that the refusal can say why
    result = await _closed(communicator)
    await communicator.disconnect()
    return result


def test_the_ticket_opens_the_servers_display_in_binary_frames_audited(server, member):
    grant = _grant(member, server)
    assert (
        grant.graphical_websocket_path == f"/ws/servers/{server.pk}/graphical-console/?ticket={grant.ticket}"
    )

    subprotocol, greeting, security = _handshake(grant.graphical_websocket_path)

    assert (subprotocol, greeting, security) == ("binary", GREETING, b"\x01\x01")
    assert Display.written == [GREETING]
    session = ConsoleSession.objects.get(pk=grant.session.pk)
    assert session.opened_at and session.closed_at and session.close_reason == "Closed by the user."
    opened = AuditEvent.objects.get(action=AuditAction.CONSOLE_OPENED)
    assert (opened.actor, opened.changes["console"]) == (member, [None, "graphical"])
    closed = AuditEvent.objects.get(action=AuditAction.CONSOLE_CLOSED)
    assert closed.changes["duration_seconds"][1] == session.duration_seconds


def test_a_client_that_asks_for_no_subprotocol_gets_none(server, owner):
    grant = _grant(owner, server)
    assert _handshake(grant.graphical_websocket_path, subprotocols=())[0] is None


def test_the_server_page_hands_out_the_displays_websocket_to_those_who_may_connect(server, client_as, users):
    answers = {name: client_as(user).post(_open_url(server)) for name, user in users.items()}

    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {"owner": 200, "admin": 200, "member": 200, "viewer": 403, "outsider": 404}
    body = answers["member"].json()
    ticket = body["websocket_url"].rsplit("=", 1)[1]
    assert body["graphical_websocket_url"] == (
        f"ws://testserver/ws/servers/{server.pk}/graphical-console/?ticket={ticket}"
    )
    assert body["console_url"] == ""  # relayed by the portal: no address of the cloud's


def test_a_reused_an_expired_and_a_foreign_ticket_are_refused(server, owner, launch, settings):
    grant = _grant(owner, server)
    _handshake(grant.graphical_websocket_path)
    other = launch(name="other").instances.get()
    foreign = _grant(owner, server).graphical_websocket_path.replace(str(server.pk), str(other.pk))
    settings.CONSOLE_TICKET_SECONDS = 0  # expires as it is issued
    expired = _grant(owner, server)

    assert _refused(grant.graphical_websocket_path) == (
        "This console ticket was used already: open the console again.",
        4403,
    )
    assert _refused(expired.graphical_websocket_path) == (
        "This console ticket has expired: open the console again.",
        4403,
    )
    reason, code = _refused(foreign)
    assert code == 4403 and "not valid" in reason
    # A serial ticket used already opens no display either: one session per ticket, of either kind.
    assert _refused(grant.websocket_path.replace("/console/", "/graphical-console/"))[1] == 4403
    assert AuditEvent.objects.filter(action=AuditAction.CONSOLE_OPENED).count() == 1


def test_a_ticket_of_someone_demoted_to_viewer_is_refused_at_the_websocket(server, member):
    grant = _grant(member, server)
    Membership.objects.filter(user=member).update(role=Role.VIEWER)

    reason, code = _refused(grant.graphical_websocket_path)

    assert (code, reason) == (4403, "You no longer have access to this server's console.")
    assert not AuditEvent.objects.filter(action=AuditAction.CONSOLE_OPENED).exists()


def test_an_outsider_with_a_made_up_ticket_is_refused_at_the_websocket(server):
    reason, code = _refused(f"/ws/servers/{server.pk}/graphical-console/?ticket=not-a-ticket")
    assert code == 4403 and "not valid" in reason


def test_viewers_and_outsiders_get_no_ticket(server, client_as, outsider, viewer):
    assert client_as(outsider).post(_open_url(server)).status_code == 404
    assert client_as(viewer).post(_open_url(server)).status_code == 403
    assert not ConsoleSession.objects.exists()


@async_to_sync
async def _open_then(path: str, then) -> tuple[str, int]:
    communicator = _communicator(path)
    assert (await communicator.connect())[0]
    assert await communicator.receive_from(timeout=5) == GREETING
    await then()
    result = await _closed(communicator)
    await communicator.disconnect()
    return result


def test_terminating_the_server_closes_its_display(server, owner):
    grant = _grant(owner, server)
    access = project_access(owner, server.project.organization.slug, server.project.slug)

    @database_sync_to_async
    def terminate():
        services.instance_action(access=access, instance=server, action="terminate", confirm_name="web-1")

    reason, code = _open_then(grant.graphical_websocket_path, terminate)

    assert (code, reason) == (4001, "web-1 is terminating: the console was closed.")
    assert ConsoleSession.objects.get().close_reason == reason
    closed = AuditEvent.objects.get(action=AuditAction.CONSOLE_CLOSED)
    assert closed.changes["reason"] == [None, reason]


def test_losing_the_role_closes_an_open_display(server, member, settings):
    settings.CONSOLE_RECHECK_SECONDS = 0.2
    grant = _grant(member, server)

    async def demote():
        await database_sync_to_async(Membership.objects.filter(user=member).update)(role=Role.VIEWER)

    reason, code = _open_then(grant.graphical_websocket_path, demote)

    assert (code, reason) == (4001, "You no longer have access to this server's console.")


def _page_url(instance):
    project = instance.project
    return reverse(
        "compute:instance_graphical_console", args=[project.organization.slug, project.slug, instance.pk]
    )


def test_the_graphical_console_page_loads_novnc_for_those_who_may_connect(server, client_as, users):
    answers = {name: client_as(user).get(_page_url(server)) for name, user in users.items()}

    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {"owner": 200, "admin": 200, "member": 200, "viewer": 403, "outsider": 404}
    page = answers["member"].content.decode()
    assert "data-graphical-console" in page and 'type="module"' in page and "js/graphical-console.js" in page
    assert "<style" not in page and "style=" not in page  # the CSP has no 'unsafe-inline'
    project = server.project
    detail = client_as(users["member"]).get(
        reverse("compute:instance_detail", args=[project.organization.slug, project.slug, server.pk])
    )
    assert f'href="{_page_url(server)}"' in detail.content.decode()
    assert not ConsoleSession.objects.exists()  # the page asks for its ticket when it connects


def test_the_page_says_so_when_the_server_is_off_or_the_zone_has_no_display(
    server, client_as, owner, monkeypatch
):
    Instance.objects.filter(pk=server.pk).update(status=InstanceStatus.STOPPED)
    off = client_as(owner).get(_page_url(server))
    assert off.status_code == 409 and "stopped: its screen is there while it runs" in off.content.decode()

    Instance.objects.filter(pk=server.pk).update(status=InstanceStatus.RUNNING)
    monkeypatch.setattr(SimulatedBackend, "RELAYS_GRAPHICAL_CONSOLE", False)
    absent = client_as(owner).get(_page_url(server))
    assert absent.status_code == 409 and "graphical-console.js" not in absent.content.decode()
