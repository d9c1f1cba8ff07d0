"""Rescue mode through the one pipeline: the server boots the rescue system and comes back running;
billing continues as running; a zone without it refuses, naming the zone; repeats change nothing;
roles are those of a reboot; audit; the simulated console answers as the rescue system."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.compute.backends import BackendState, Capability, Rejected, get_backend
from portal.compute.models import Instance, Operation, SimulatedServer
from portal.compute.services.common import ComputeRefused
from portal.compute.services.rescue import instance_rescue, instance_unrescue
from portal.compute.snapshot_rules import capability_refusal
from portal.metering.models import UsageSegment
from portal.tenancy.access import project_access
from tests.steps import drive


@pytest.fixture
def server(launch):
    batch = launch(name="web")
    drive(Operation.objects.get(instance__batch=batch))
    return Instance.objects.get(batch=batch)


def _open_meters(instance) -> set[str]:
    return set(
        UsageSegment.objects.filter(resource_id=instance.pk, ended_at__isnull=True).values_list(
            "meter", flat=True
        )
    )


def test_rescue_and_back(access, server):
    op = instance_rescue(access=access, instance=server)
    server.refresh_from_db()
    assert (op.action, server.status) == ("rescue", "rescuing")
    drive(op)
    server.refresh_from_db()
    op.refresh_from_db()
    assert (op.state, server.status, server.in_rescue) == ("succeeded", "rescue", True)
    assert [a.action for a in server.available_actions] == ["terminate"]  # and unrescue, offered apart
    assert server.allows("unrescue") and not server.allows("reboot")

    back = instance_unrescue(access=access, instance=server)
    server.refresh_from_db()
    assert server.status == "unrescuing"
    drive(back)
    server.refresh_from_db()
    assert (server.status, server.in_rescue) == ("running", False)
    said = list(
        AuditEvent.objects.filter(action=AuditAction.INSTANCE_ACTION, target_id=str(server.pk))
        .order_by("created_at")
        .values_list("changes", flat=True)
    )
    assert said == [{"action": [None, "Rescue"]}, {"action": [None, "Leave rescue"]}]


def test_billing_continues_as_running(access, server):
    compute = UsageSegment.objects.get(resource_id=server.pk, meter="compute", ended_at__isnull=True)
    drive(instance_rescue(access=access, instance=server))
    server.refresh_from_db()
    assert server.status == "rescue" and _open_meters(server) == {"compute", "disk"}
    # The same segment: entering rescue neither stops nor restarts the compute meter.
    assert UsageSegment.objects.filter(resource_id=server.pk, meter="compute").get() == compute
    assert server.running_since is not None


def test_a_stopped_server_is_rescued_and_runs_afterwards(access, server):
    Instance.objects.filter(pk=server.pk).update(status="stopped", running_since=None)
    SimulatedServer.objects.filter(backend_id=server.backend_id).update(state="stopped")
    server.refresh_from_db()
    drive(instance_rescue(access=access, instance=server))
    server.refresh_from_db()
    assert server.status == "rescue" and server.running_since is not None  # billed as running
    drive(instance_unrescue(access=access, instance=server))
    server.refresh_from_db()
    assert server.status == "running"


def test_asking_again_returns_the_same_operation(access, server):
    first = instance_rescue(access=access, instance=server)
    server.refresh_from_db()
    assert instance_rescue(access=access, instance=server) == first
    assert Operation.objects.filter(instance=server, action="rescue").count() == 1


def test_leaving_rescue_when_not_in_it_is_refused(access, server):
    with pytest.raises(ComputeRefused) as refused:
        instance_unrescue(access=access, instance=server)
    assert refused.value.status == 409 and "works only when it is in rescue mode" in refused.value.message
    server.refresh_from_db()
    assert server.status == "running" and not Operation.objects.filter(action="unrescue").exists()


def test_a_zone_without_rescue_refuses_and_names_the_zone(access, server):
    server.zone.backend_settings = {"absent": ["rescue"]}
    server.zone.save()
    assert (
        capability_refusal(server.zone, Capability.RESCUE)
        == f"Rescue mode is not available in {server.zone.code}."
    )
    with pytest.raises(ComputeRefused) as refused:
        instance_rescue(access=access, instance=server)
    assert refused.value.status == 409 and server.zone.code in refused.value.message
    server.refresh_from_db()
    assert server.status == "running" and not Operation.objects.filter(action="rescue").exists()
    with pytest.raises(Rejected):  # the backend itself refuses too
        get_backend("simulated").rescue_server(server.backend_id)


def test_a_viewer_may_not(org, project, viewer, server):
    access = project_access(viewer, org.slug, project.slug)
    with pytest.raises(PermissionDenied):
        instance_rescue(access=access, instance=server)
    server.refresh_from_db()
    assert server.status == "running"


def test_a_server_in_rescue_can_be_terminated(access, server):
    from portal.compute import services

    drive(instance_rescue(access=access, instance=server))
    server.refresh_from_db()
    drive(services.instance_action(access=access, instance=server, action="terminate", confirm_name="web"))
    server.refresh_from_db()
    assert server.status == "terminated"


def test_the_simulated_console_is_the_rescue_system_while_in_rescue(access, server):
    drive(instance_rescue(access=access, instance=server))
    backend = get_backend("simulated")
    assert backend.get_server(server.backend_id).state == BackendState.RESCUE
    assert "rescue system" in backend.console_output(server.backend_id)
    console = backend.open_serial_console(server.backend_id)
    try:
        assert b"Rescue system" in console.read(1)
        console.write(b"root\rx\rlsblk\r")
        said = b""
        while b"own disk" not in said and (chunk := console.read(1)):
            said += chunk
        assert b"vdb" in said and b"this server's own disk" in said
    finally:
        console.close()


# --- the server page -------------------------------------------------------------------------------


def _action(client, instance, **data):
    project = instance.project
    url = reverse("compute:instance_action", args=[project.organization.slug, project.slug, instance.pk])
    return client.post(url, data)


def test_the_page_offers_rescue_and_shows_the_banner_with_how_to_leave(project, owner, client_as, server):
    client = client_as(owner)
    page = client.get(server.get_absolute_url()).content.decode()
    assert "Rescue…" in page and 'value="rescue"' in page and "data-rescue-banner" not in page
    response = _action(client, server, action="rescue")
    assert response.status_code == 302
    server.refresh_from_db()
    assert server.status == "rescuing"
    assert "Entering rescue mode" in client.get(server.get_absolute_url()).content.decode()
    drive(Operation.objects.get(instance=server, action="rescue"))
    page = client.get(server.get_absolute_url()).content.decode()
    assert "data-rescue-banner" in page and "In rescue mode." in page
    assert 'value="unrescue"' in page and "Leave rescue mode" in page
    assert 'href="#console-card-rescue"' in page and 'id="console-card-rescue"' in page
    assert "Open serial console" in page  # the rescue system answers on it
    assert 'value="reboot"' not in page and "Rescue…" not in page
    assert _action(client, server, action="unrescue").status_code == 302
    drive(Operation.objects.get(instance=server, action="unrescue"))
    server.refresh_from_db()
    assert server.status == "running"


def test_a_zone_without_rescue_says_so_and_offers_no_button(project, owner, client_as, server):
    server.zone.backend_settings = {"absent": ["rescue"]}
    server.zone.save()
    client = client_as(owner)
    page = client.get(server.get_absolute_url()).content.decode()
    assert "Rescue…" not in page and f"Rescue mode is not available in {server.zone.code}." in page
    response = _action(client, server, action="rescue")
    assert response.status_code == 409 and "Rescue mode is not available" in response.content.decode()
    server.refresh_from_db()
    assert server.status == "running"


def test_a_viewer_sees_no_rescue_and_may_not_post_it(project, viewer, client_as, server):
    client = client_as(viewer)
    assert "Rescue…" not in client.get(server.get_absolute_url()).content.decode()
    assert _action(client, server, action="rescue").status_code == 403
    server.refresh_from_db()
    assert server.status == "running"


def test_the_usage_card_counts_rescue_as_running(project, owner, client_as, access, server):
    drive(instance_rescue(access=access, instance=server))
    page = client_as(owner).get(server.get_absolute_url()).content.decode()
    assert "Not running" not in page and "now in rescue mode (billed as running)" in page
