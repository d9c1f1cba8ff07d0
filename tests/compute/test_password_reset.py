"""Root password reset (services/passwords.py): a generated password set in the running guest and
returned once; the simulated guest's console then takes root with it and refuses the old one; it is
kept nowhere in plain text (audit, database); console roles; a server that is not running and a zone
without it are refused, naming the zone, with nothing changed."""

from __future__ import annotations

import json
import re

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.compute.backends import Rejected, get_backend
from portal.compute.models import Instance, Operation, SimulatedServer
from portal.compute.services.common import ComputeRefused
from portal.compute.services.passwords import (
    PASSWORD_ALPHABET,
    PASSWORD_LENGTH,
    instance_password_reset,
    password_reset_refusal,
)
from portal.tenancy.access import project_access
from tests.steps import drive


@pytest.fixture
def server(launch):
    batch = launch(name="web")
    drive(Operation.objects.get(instance__batch=batch))
    return Instance.objects.get(batch=batch)


def _log_in(backend_id: str, user: str, password: str) -> bytes:
    """Type a login on the simulated server's serial console; what it answered."""
    console = get_backend("simulated").open_serial_console(backend_id)
    try:
        console.write(f"{user}\r{password}\r".encode())
        said = b""
        while b"$ " not in said and b"Login incorrect" not in said and (chunk := console.read(1)):
            said += chunk
        return said
    finally:
        console.close()


def test_the_guest_takes_the_new_password_and_refuses_the_old(access, server):
    first = instance_password_reset(access=access, instance=server)
    assert len(first.password) == PASSWORD_LENGTH and set(first.password) <= set(PASSWORD_ALPHABET)
    assert b"root@web:~$ " in _log_in(server.backend_id, "root", first.password)
    assert b"Login incorrect" in _log_in(server.backend_id, "root", "guess")

    second = instance_password_reset(access=access, instance=server)
    assert second.password != first.password
    assert b"Login incorrect" in _log_in(server.backend_id, "root", first.password)  # stopped working
    assert b"root@web:~$ " in _log_in(server.backend_id, "root", second.password)


def test_it_is_audited_and_kept_nowhere_in_plain_text(access, server, owner):
    reset = instance_password_reset(access=access, instance=server)
    event = AuditEvent.objects.get(action=AuditAction.INSTANCE_PASSWORD_RESET)
    assert (event.actor, event.target_id, event.changes) == (owner, str(server.pk), {"user": [None, "root"]})
    assert reset.event == event
    stored = json.dumps(list(SimulatedServer.objects.values()), default=str) + json.dumps(
        list(AuditEvent.objects.values("changes")), default=str
    )
    assert reset.password not in stored  # the guest keeps a hash, as /etc/shadow does
    assert not Operation.objects.filter(instance=server).exclude(action="create").exists()


@pytest.mark.parametrize("status", ["stopped", "rebooting", "rescue"])
def test_only_a_running_server(access, server, status):
    Instance.objects.filter(pk=server.pk).update(status=status)
    server.refresh_from_db()
    with pytest.raises(ComputeRefused) as refused:
        instance_password_reset(access=access, instance=server)
    assert refused.value.status == 409 and "while it runs" in refused.value.message
    assert not AuditEvent.objects.filter(action=AuditAction.INSTANCE_PASSWORD_RESET).exists()


def test_a_zone_without_it_refuses_and_names_the_zone(access, server):
    server.zone.backend_settings = {"absent": ["password_reset"]}
    server.zone.save()
    assert password_reset_refusal(server) == f"Root password reset is not available in {server.zone.code}."
    with pytest.raises(ComputeRefused) as refused:
        instance_password_reset(access=access, instance=server)
    assert refused.value.status == 409 and server.zone.code in refused.value.message
    with pytest.raises(Rejected):  # the backend itself refuses too
        get_backend("simulated").set_password(server.backend_id, "root", "x" * 20)
    assert SimulatedServer.objects.get(backend_id=server.backend_id).password_hashes == {}


def test_the_cloud_refusing_is_a_409_in_its_words(access, server):
    SimulatedServer.objects.filter(backend_id=server.backend_id).update(state="stopped")  # behind our back
    with pytest.raises(ComputeRefused) as refused:
        instance_password_reset(access=access, instance=server)
    assert refused.value.status == 409 and "while it runs" in refused.value.message
    assert not AuditEvent.objects.filter(action=AuditAction.INSTANCE_PASSWORD_RESET).exists()


def test_libvirt_says_why_in_plain_words(server):
    from portal.compute.backends.libvirt import LibvirtBackend

    reason = LibvirtBackend("libvirt").absent_reason("any", "password_reset")
    assert "QEMU guest agent" in reason and "console" in reason


@pytest.mark.parametrize("role", ["owner", "admin_user", "member"])
def test_those_who_may_open_the_console_may(org, project, server, role, request):
    user = request.getfixturevalue(role)
    reset = instance_password_reset(access=project_access(user, org.slug, project.slug), instance=server)
    assert reset.password


def test_a_viewer_may_not_and_an_outsider_does_not_see_it(org, project, viewer, outsider, server):
    with pytest.raises(PermissionDenied):
        instance_password_reset(access=project_access(viewer, org.slug, project.slug), instance=server)
    with pytest.raises(Http404):
        project_access(outsider, org.slug, project.slug)
    assert SimulatedServer.objects.get(backend_id=server.backend_id).password_hashes == {}


# --- the server page -------------------------------------------------------------------------------


def _reset(client, instance, **data):
    project = instance.project
    url = reverse(
        "compute:instance_password_reset", args=[project.organization.slug, project.slug, instance.pk]
    )
    return client.post(url, data)


def test_the_page_resets_and_shows_the_password_once(project, owner, client_as, server):
    client = client_as(owner)
    page = client.get(server.get_absolute_url()).content.decode()
    assert "Reset root password…" in page and "the current root password stops working" in page.lower()
    response = _reset(client, server, confirm="1")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    body = response.content.decode()
    password = re.search(r'id="new-root-password">([^<]+)<', body)[1]
    assert "it will not be shown again" in body and 'data-copy="new-root-password"' in body
    assert "js/copy.js" in body and "<script>" not in body  # no inline script: the CSP forbids it
    assert b"root@web:~$ " in _log_in(server.backend_id, "root", password)
    assert password not in client.get(server.get_absolute_url()).content.decode()  # once


def test_the_page_asks_for_the_confirmation(project, owner, client_as, server):
    response = _reset(client_as(owner), server)
    assert response.status_code == 400 and "Confirm the reset" in response.content.decode()
    assert SimulatedServer.objects.get(backend_id=server.backend_id).password_hashes == {}


def test_a_zone_without_it_says_so_and_offers_no_button(project, owner, client_as, server):
    server.zone.backend_settings = {"absent": ["password_reset"]}
    server.zone.save()
    client = client_as(owner)
    page = client.get(server.get_absolute_url()).content.decode()
    assert "Reset root password…" not in page
    assert f"Root password reset is not available in {server.zone.code}." in page
    response = _reset(client, server, confirm="1")
    assert response.status_code == 409 and 'id="new-root-password"' not in response.content.decode()


def test_a_stopped_server_says_when(project, owner, client_as, server):
    Instance.objects.filter(pk=server.pk).update(status="stopped")
    client = client_as(owner)
    assert "can be reset while web runs" in client.get(server.get_absolute_url()).content.decode()
    assert _reset(client, server, confirm="1").status_code == 409


def test_viewer_403_outsider_404_get_405(project, viewer, outsider, owner, client_as, server):
    assert "Reset root password" not in client_as(viewer).get(server.get_absolute_url()).content.decode()
    assert _reset(client_as(viewer), server, confirm="1").status_code == 403
    assert _reset(client_as(outsider), server, confirm="1").status_code == 404
    project = server.project
    url = reverse(
        "compute:instance_password_reset", args=[project.organization.slug, project.slug, server.pk]
    )
    assert client_as(owner).get(url).status_code == 405
    assert SimulatedServer.objects.get(backend_id=server.backend_id).password_hashes == {}
