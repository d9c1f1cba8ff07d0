"""The serial console's websocket (channels' WebsocketCommunicator on the real ASGI application):
a ticket opens one session for its user and server before it expires; viewers, outsiders, reused,
expired and foreign tickets are refused; a session is audited on open and close; it closes when the
server is terminated or the user loses the role."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.urls import reverse

from portal.asgi import application
from portal.audit.models import AuditAction, AuditEvent
from portal.compute import services, tasks
from portal.compute.models import ConsoleSession, Instance, InstanceStatus, Operation
from portal.compute.services.consoles import console_grant
from portal.tenancy.access import project_access
from portal.tenancy.models import Membership, Role
from tests.steps import drive

# The consumer opens the cloud's stream in a thread of its own: the data must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(launch):
    batch = launch(name="web-1")
    drive(Operation.objects.get(instance__batch=batch))
    instance = Instance.objects.get(batch=batch)
    assert instance.status == InstanceStatus.RUNNING
    return instance


def _grant(user, instance):
    project = instance.project
    access = project_access(user, project.organization.slug, project.slug)
    return console_grant(access=access, instance=instance)


def _open_url(instance):
    project = instance.project
    return reverse(
        "compute:instance_console_open", args=[project.organization.slug, project.slug, instance.pk]
    )


async def _until(communicator, text: str, limit: int = 40) -> str:
    """What the console printed, up to and including `text`."""
    seen = b""
    for _ in range(limit):
        message = await communicator.receive_output(timeout=3)
        assert message["type"] == "websocket.send", message
        if message.get("bytes"):
            seen += message["bytes"]
            if text.encode() in seen:
                return seen.decode()
        else:
            assert json.loads(message["text"])["type"] != "closed", message["text"]
    raise AssertionError(f"{text!r} never came: {seen!r}")


async def _closed(communicator) -> tuple[str, int]:
    """The reason the portal gave and the close code."""
    reason = ""
    while True:
        message = await communicator.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            return reason, message["code"]
        if message.get("text"):
            body = json.loads(message["text"])
            if body["type"] == "closed":
                reason = body["reason"]


def _communicator(path: str, origin: bytes | None = b"http://localhost") -> WebsocketCommunicator:
    headers = [(b"origin", origin)] if origin else []
    return WebsocketCommunicator(application, path, headers=headers)


@async_to_sync
async def _session_with_a_command(path: str, command: str, answer: str) -> str:
    communicator = _communicator(path)
    connected, _ = await communicator.connect()
    assert connected
    opened = json.loads((await communicator.receive_output(timeout=5))["text"])
    assert opened["type"] == "opened"
    greeting = await _until(communicator, "login: ")
    for line in ("dana\r", "secret\r", command + "\r"):
        await communicator.send_to(bytes_data=line.encode())
    printed = await _until(communicator, answer)
    await communicator.disconnect()
    return greeting + printed


@async_to_sync
async def _refused(path: str, origin: bytes | None = b"http://localhost") -> tuple[str, int]:
    communicator = _communicator(path, origin)
    connected, _ = await communicator.connect()
    if not connected:
        return "", 403
    result = await _closed(communicator)
    await communicator.disconnect()
    return result


def test_a_ticket_opens_the_console_and_the_session_is_audited(server, member):
    grant = _grant(member, server)

    printed = _session_with_a_command(grant.websocket_path, "echo $((6*7))", "42\r\n")

    assert "web-1 login:" in printed
    session = ConsoleSession.objects.get(pk=grant.session.pk)
    assert session.opened_at and session.closed_at and session.close_reason == "Closed by the user."
    opened, closed = AuditEvent.objects.filter(
        action__in=[AuditAction.CONSOLE_OPENED, AuditAction.CONSOLE_CLOSED]
    ).order_by("created_at", "id")
    assert (opened.action, opened.actor, opened.target_id) == (
        AuditAction.CONSOLE_OPENED,
        member,
        str(server.pk),
    )
    assert closed.action == AuditAction.CONSOLE_CLOSED
    assert closed.changes["duration_seconds"][1] == session.duration_seconds >= 0
    assert closed.changes["session"] == [None, str(session.pk)]


def test_the_server_page_hands_out_a_ticket_to_those_who_may_connect(server, client_as, users):
    answers = {name: client_as(user).post(_open_url(server)) for name, user in users.items()}

    assert {name: answer.status_code for name, answer in answers.items()} == {
        "owner": 200,
        "admin": 200,
        "member": 200,
        "viewer": 403,
        "outsider": 404,
    }
    body = answers["member"].json()
    assert body["websocket_url"].startswith(f"ws://testserver/ws/servers/{server.pk}/console/?ticket=")
    assert ConsoleSession.objects.count() == 3
    assert client_as(users["owner"]).get(_open_url(server)).status_code == 405


def test_a_stopped_server_has_no_console_to_open(server, client_as, owner):
    Instance.objects.filter(pk=server.pk).update(status=InstanceStatus.STOPPED)

    answer = client_as(owner).post(_open_url(server))

    assert answer.status_code == 409
    assert "stopped" in answer.json()["error"]


@async_to_sync
async def _twice(path: str) -> tuple[str, int]:
    """The same ticket again while its first session is open, and after it has closed."""
    first = _communicator(path)
    assert (await first.connect())[0]
    await _until(first, "login: ")
    second = _communicator(path)
    await second.connect()
    while_open = await _closed(second)
    await first.disconnect()
    third = _communicator(path)
    await third.connect()
    after = await _closed(third)
    return while_open, after


def test_a_ticket_opens_one_session_only(server, owner):
    grant = _grant(owner, server)

    while_open, after = _twice(grant.websocket_path)

    refused = ("This console ticket was used already: open the console again.", 4403)
    assert while_open == after == refused
    assert AuditEvent.objects.filter(action=AuditAction.CONSOLE_OPENED).count() == 1


def test_an_expired_ticket_is_refused(server, owner, settings):
    settings.CONSOLE_TICKET_SECONDS = 0  # expires as it is issued
    grant = _grant(owner, server)

    reason, code = _refused(grant.websocket_path)

    assert (code, reason) == (4403, "This console ticket has expired: open the console again.")
    assert ConsoleSession.objects.get().opened_at is None


def test_tickets_that_expired_unused_are_purged_and_opened_sessions_kept(server, owner, settings):
    settings.CONSOLE_TICKET_KEEP_HOURS = 0
    settings.CONSOLE_TICKET_SECONDS = 0  # expired as issued
    unused = _grant(owner, server).session
    opened = _grant(owner, server).session
    ConsoleSession.objects.filter(pk=opened.pk).update(opened_at=opened.created_at)
    settings.CONSOLE_TICKET_SECONDS = 60
    fresh = _grant(owner, server).session

    assert tasks.console_tickets_purge() == 1

    assert set(ConsoleSession.objects.values_list("pk", flat=True)) == {opened.pk, fresh.pk}
    assert not ConsoleSession.objects.filter(pk=unused.pk).exists()


def test_a_made_up_ticket_and_a_ticket_for_another_server_are_refused(server, owner, launch):
    other = launch(name="other").instances.get()
    grant = _grant(owner, server)

    made_up = _refused(f"/ws/servers/{server.pk}/console/?ticket=not-a-ticket")
    foreign = _refused(grant.websocket_path.replace(str(server.pk), str(other.pk)))

    assert made_up[1] == foreign[1] == 4403
    assert "not valid" in made_up[0] and "not valid" in foreign[0]
    assert ConsoleSession.objects.get().opened_at is None  # still good for its own server


def test_a_ticket_of_someone_demoted_to_viewer_is_refused(server, member):
    grant = _grant(member, server)
    Membership.objects.filter(user=member).update(role=Role.VIEWER)

    reason, code = _refused(grant.websocket_path)

    assert (code, reason) == (4403, "You no longer have access to this server's console.")
    assert not AuditEvent.objects.filter(action=AuditAction.CONSOLE_OPENED).exists()


def test_a_page_of_another_site_can_not_open_a_console(server, owner):
    grant = _grant(owner, server)

    assert _refused(grant.websocket_path, origin=b"https://evil.example")[1] == 403
    assert ConsoleSession.objects.get().opened_at is None


@async_to_sync
async def _open_then(path: str, then) -> tuple[str, int]:
    communicator = _communicator(path)
    connected, _ = await communicator.connect()
    assert connected
    await _until(communicator, "login: ")
    await then()
    result = await _closed(communicator)
    await communicator.disconnect()
    return result


def test_terminating_the_server_closes_its_console(server, owner, django_capture_on_commit_callbacks):
    grant = _grant(owner, server)
    access = project_access(owner, server.project.organization.slug, server.project.slug)

    async def terminate():
        from channels.db import database_sync_to_async

        @database_sync_to_async
        def act():
            services.instance_action(access=access, instance=server, action="terminate", confirm_name="web-1")

        await act()

    reason, code = _open_then(grant.websocket_path, terminate)

    assert (code, reason) == (4001, "web-1 is terminating: the console was closed.")
    session = ConsoleSession.objects.get()
    assert session.close_reason == reason
    closed = AuditEvent.objects.get(action=AuditAction.CONSOLE_CLOSED)
    assert closed.changes["reason"] == [None, reason]


def test_losing_the_role_closes_an_open_console(server, member, settings):
    settings.CONSOLE_RECHECK_SECONDS = 0.2
    grant = _grant(member, server)

    async def demote():
        from channels.db import database_sync_to_async

        await database_sync_to_async(Membership.objects.filter(user=member).update)(role=Role.VIEWER)

    reason, code = _open_then(grant.websocket_path, demote)

    assert (code, reason) == (4001, "You no longer have access to this server's console.")


@async_to_sync
async def _typed_into_a_broken_stream(path: str) -> tuple[str, int]:
    communicator = _communicator(path)
    connected, _ = await communicator.connect()
    assert connected
    await _until(communicator, "login: ")
    await communicator.send_to(bytes_data=b"x")
    result = await _closed(communicator)
    await communicator.disconnect()
    return result


def test_a_stream_that_breaks_unexpectedly_ends_the_session_audited(server, member, monkeypatch):
    from portal.compute.backends.simulated_console import SimulatedConsole

    def broken(self, data):
        raise RuntimeError("a bug in the stream")

    monkeypatch.setattr(SimulatedConsole, "write", broken)
    grant = _grant(member, server)

    reason, code = _typed_into_a_broken_stream(grant.websocket_path)

    assert (reason, code) == ("The console stopped working. Please open it again.", 4000)
    session = ConsoleSession.objects.get(pk=grant.session.pk)
    assert session.closed_at is not None
    assert AuditEvent.objects.filter(action=AuditAction.CONSOLE_CLOSED).count() == 1


def test_arithmetic_past_64_bits_is_printed_as_typed(server, member):
    grant = _grant(member, server)
    big = "9" * 4400
    printed = _session_with_a_command(grant.websocket_path, f"echo $(({big}+1))", "+1))\r\n")
    assert big in printed
