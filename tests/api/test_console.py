"""POST /instances/{id}/console: a one-time ticket for the serial console with the web page's
rules (owners, admins and members; read-write tokens), usable by a script without an Origin."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from portal.asgi import application
from portal.compute.models import ConsoleSession, Instance, Operation
from portal.tenancy.models import Role
from tests.api.conftest import assert_problem
from tests.factories import MembershipFactory, UserFactory
from tests.steps import drive

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(launch):
    batch = launch(name="api-1")
    drive(Operation.objects.get(instance__batch=batch))
    return Instance.objects.get(batch=batch)


@async_to_sync
async def _first_output(path: str) -> tuple[dict, bytes]:
    communicator = WebsocketCommunicator(application, path)  # no Origin header: a script
    connected, _ = await communicator.connect()
    assert connected
    opened = json.loads((await communicator.receive_output(timeout=5))["text"])
    printed = (await communicator.receive_output(timeout=5))["bytes"]
    await communicator.disconnect()
    return opened, printed


def test_a_member_gets_a_ticket_a_script_can_open(server, org, member, token_for):
    _, api = token_for(member, org)

    answer = api.post(f"instances/{server.pk}/console")

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["console_url"] is None and body["expires_at"]
    prefix = f"ws://testserver/ws/servers/{server.pk}/console/?ticket="
    assert body["websocket_url"].startswith(prefix)
    opened, printed = _first_output(body["websocket_url"].removeprefix("ws://testserver"))
    assert opened == {"type": "opened", "server": "api-1"}
    assert b"api-1 login: " in printed
    assert ConsoleSession.objects.get().user == member


def test_viewers_read_only_tokens_and_outsiders_get_no_ticket(server, org, outsider, token_for):
    viewer = MembershipFactory(organization=org, role=Role.VIEWER, user=UserFactory()).user
    member = MembershipFactory(organization=org, role=Role.MEMBER, user=UserFactory()).user
    path = f"instances/{server.pk}/console"

    assert "Viewer" in assert_problem(token_for(viewer, org)[1].post(path), 403)["detail"]
    read_only = token_for(member, org, scope="read")[1].post(path)
    assert "read-only" in assert_problem(read_only, 403)["detail"]
    other = outsider.memberships.get().organization
    assert_problem(token_for(outsider, other)[1].post(path), 404)
    assert not ConsoleSession.objects.exists()


@async_to_sync
async def _refused_at_connect(path: str) -> str:
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect()
    reason = ""
    if connected:
        while True:
            message = await communicator.receive_output(timeout=5)
            if message["type"] == "websocket.close":
                break
            if message.get("text") and json.loads(message["text"])["type"] == "closed":
                reason = json.loads(message["text"])["reason"]
    await communicator.disconnect()
    return reason


def test_a_revoked_token_ends_the_console_it_opened(server, org, member, token_for):
    from django.utils import timezone

    from portal.compute.services.consoles import console_session_refusal

    token, api = token_for(member, org)
    first = api.post(f"instances/{server.pk}/console").json()["websocket_url"]
    second = api.post(f"instances/{server.pk}/console").json()["websocket_url"]
    open_session = ConsoleSession.objects.order_by("created_at").first()
    assert open_session.api_token == token and console_session_refusal(open_session.pk) == ""

    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])

    # An open session is told at its next check; an unused ticket no longer opens.
    refusal = "The API token that opened this console was revoked or has expired."
    assert console_session_refusal(open_session.pk) == refusal
    assert _refused_at_connect(second.removeprefix("ws://testserver")) == refusal
    assert first != second


def test_where_the_portal_relays_the_display_the_api_answers_its_websocket_too(
    server, org, member, token_for, monkeypatch
):
    from portal.compute.backends import Capability
    from portal.compute.backends.simulated import SimulatedBackend

    kinds = SimulatedBackend.capabilities
    monkeypatch.setattr(SimulatedBackend, "RELAYS_GRAPHICAL_CONSOLE", True)
    monkeypatch.setattr(
        SimulatedBackend,
        "capabilities",
        lambda self, zone: kinds(self, zone) | {Capability.GRAPHICAL_CONSOLE},
    )
    _, api = token_for(member, org)

    body = api.post(f"instances/{server.pk}/console").json()

    ticket = body["websocket_url"].rsplit("=", 1)[1]
    assert body["graphical_websocket_url"] == (
        f"ws://testserver/ws/servers/{server.pk}/graphical-console/?ticket={ticket}"
    )
    assert body["console_url"] is None  # nothing of the cloud's own to link to


def test_without_a_relayed_display_the_api_answers_no_graphical_websocket(server, org, member, token_for):
    _, api = token_for(member, org)
    assert api.post(f"instances/{server.pk}/console").json()["graphical_websocket_url"] is None
