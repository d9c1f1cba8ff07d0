"""Volume pages: create under residency policy and quota, attach in the same zone, detach, extend,
delete, roles. Each accepted request is an operation (driven in test_volume_pipeline.py); a refused
one changes nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Jurisdiction
from portal.compute.models import Operation, Volume, VolumeStatus
from portal.residency.models import ResidencyPolicy
from tests.factories import InstanceFactory, ProjectFactory


def _url(project, name: str = "compute:volumes", *args) -> str:
    return reverse(name, args=[project.organization.slug, project.slug, *args])


def _eu_only(org) -> ResidencyPolicy:
    policy = ResidencyPolicy.objects.create(organization=org, name="EU only")
    policy.jurisdictions.set(Jurisdiction.objects.filter(code="eu"))
    return policy


@pytest.fixture
def fra(catalog):
    return catalog["fra1-a"]


@pytest.fixture
def volume(project, fra, owner):
    return Volume.objects.create(
        project=project,
        name="data",
        zone=fra,
        size_gib=100,
        created_by=owner,
        status="available",
        backend_id="v-1",
    )


@pytest.fixture
def server(project, fra):
    return InstanceFactory(project=project, name="web-1", zone=fra, status="running")


def _attach(client, project, volume, instance):
    return client.post(_url(project, "compute:volume_attach", volume.pk), {"instance": str(instance.pk)})


def _attached(volume, instance):
    """What a finished attach leaves (the pipeline's part is test_volume_pipeline.py's)."""
    Volume.objects.filter(pk=volume.pk).update(status="in_use", attached_to=instance, device="/dev/vdb")
    Operation.objects.filter(volume=volume).update(state="succeeded")
    volume.refresh_from_db()


# --- Creating ---------------------------------------------------------------------------------


def test_create_a_volume(project, member, client_as, fra):
    client = client_as(member)
    response = client.post(_url(project), {"name": "data-1", "size_gib": "200", "zone": fra.pk})
    assert response.status_code == 302
    volume = Volume.objects.get(project=project)
    assert (volume.name, volume.size_gib, volume.zone, volume.status) == (
        "data-1",
        200,
        fra,
        VolumeStatus.CREATING,
    )
    assert Operation.objects.get(volume=volume).action == "volume_create"
    shown = client.get(_url(project)).content.decode()
    assert "Creating data-1 (200 GiB, 20.00 EUR a month) in fra1-a" in shown
    event = AuditEvent.objects.get(action=AuditAction.VOLUME_CREATED)
    assert event.actor == member and event.changes["zone"] == [None, "fra1-a"]


def test_the_new_volume_form_prices_the_size_typed(project, member, viewer, outsider, client_as, catalog):
    page = client_as(member).get(_url(project)).content.decode()
    assert '10.00 EUR a month</strong> <span class="muted">for 100 GiB' in page  # the size offered
    price = _url(project, "compute:volume_price")
    answer = client_as(viewer).get(price, {"size_gib": "250"}, headers={"HX-Request": "true"})
    assert answer.status_code == 200 and "25.00 EUR a month" in answer.content.decode()
    for wrong in ("0", "16385", "ten", ""):
        answer = client_as(member).get(price, {"size_gib": wrong}).content.decode()
        assert "Enter 1 to 16384 GiB to see the price." in answer and "EUR a month" not in answer
    assert client_as(member).post(price, {"size_gib": "250"}).status_code == 405
    assert client_as(outsider).get(price, {"size_gib": "250"}).status_code == 404


def test_placement_denied_under_an_eu_only_policy(org, project, member, client_as, catalog):
    _eu_only(org)
    response = client_as(member).post(
        _url(project), {"name": "data-1", "size_gib": "10", "zone": catalog["iad1-a"].pk}
    )
    assert response.status_code == 403
    assert (
        "Blocked by organization policy &#x27;EU only&#x27;: Ashburn is in United States"
        in response.content.decode()
    )
    assert not Volume.objects.exists()
    event = AuditEvent.objects.get(action=AuditAction.PLACEMENT_DENIED)
    assert event.actor == member and event.target_repr.startswith("iad1-a")
    assert event.changes["attempted"] == [None, "create volume data-1 (10 GiB) in iad1-a"]


def test_the_zone_list_offers_only_what_the_policy_allows(org, project, member, client_as, catalog):
    _eu_only(org)
    page = client_as(member).get(_url(project)).content.decode()
    assert f'value="{catalog["fra1-a"].pk}"' in page
    assert f'value="{catalog["iad1-a"].pk}"' not in page
    assert f'value="{catalog["par1-b"].pk}"' not in page  # sold out


def test_a_forbidden_zone_is_audited_even_when_it_is_closed(org, project, member, client_as, catalog):
    _eu_only(org)
    sold_out_elsewhere = next(
        z for z in catalog.values() if z.region.jurisdiction.code != "eu" and not z.accepts_launches
    )
    response = client_as(member).post(
        _url(project), {"name": "d", "size_gib": "10", "zone": sold_out_elsewhere.pk}
    )
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action=AuditAction.PLACEMENT_DENIED).count() == 1


def test_a_closed_zone_is_refused(project, member, client_as, catalog):
    response = client_as(member).post(
        _url(project), {"name": "d", "size_gib": "10", "zone": catalog["par1-b"].pk}
    )
    assert response.status_code == 409
    assert "par1-b is sold out right now; choose another zone." in response.content.decode()
    assert not Volume.objects.exists()


def test_an_unknown_zone_is_a_400_and_audited(project, member, client_as, catalog):
    response = client_as(member).post(_url(project), {"name": "d", "size_gib": "10", "zone": "987654"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert AuditEvent.objects.get(action=AuditAction.PLACEMENT_DENIED).changes["reason"] == [
        None,
        "No such zone.",
    ]


def test_over_quota_nothing_is_created(project, member, client_as, fra, volume):
    project.quota_volume_gib = 150
    project.save()
    response = client_as(member).post(_url(project), {"name": "more", "size_gib": "60", "zone": fra.pk})
    assert response.status_code == 403
    assert "volume storage: needs 60 GiB, 50 GiB left of 150 GiB" in response.content.decode()
    assert list(Volume.objects.values_list("name", flat=True)) == ["data"]
    assert not AuditEvent.objects.filter(action=AuditAction.VOLUME_CREATED).exists()
    assert not Operation.objects.exists()


def test_deleted_volumes_free_their_quota(project, member, client_as, fra, volume):
    project.quota_volume_gib = 150
    project.save()
    client = client_as(member)
    client.post(_url(project, "compute:volume_delete", volume.pk))
    Volume.objects.filter(pk=volume.pk).update(status="deleted")  # once the cloud confirmed
    assert client.post(_url(project), {"name": "more", "size_gib": "150", "zone": fra.pk}).status_code == 302


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "Data 1", "size_gib": "10"}, "Use lower-case letters, digits and hyphens"),
        ({"name": "-data", "size_gib": "10"}, "Use lower-case letters, digits and hyphens"),
        ({"name": "", "size_gib": "10"}, "This field is required."),
        ({"name": "d", "size_gib": "0"}, "greater than or equal to 1"),
        ({"name": "d", "size_gib": "16385"}, "less than or equal to 16384"),
        ({"name": "d", "size_gib": "lots"}, "Enter a whole number."),
    ],
)
def test_bad_input_is_a_400(project, member, client_as, fra, data, message):
    response = client_as(member).post(_url(project), data | {"zone": fra.pk})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Volume.objects.exists()


def test_a_name_in_use_is_refused(project, member, client_as, fra, volume):
    response = client_as(member).post(_url(project), {"name": "data", "size_gib": "10", "zone": fra.pk})
    assert response.status_code == 409
    assert "already has a volume named “data”" in response.content.decode()
    assert Volume.objects.count() == 1


# --- Attaching and detaching ------------------------------------------------------------------


def test_attach_to_a_server_in_the_same_zone_and_again_is_a_no_op(project, member, client_as, volume, server):
    client = client_as(member)
    assert _attach(client, project, volume, server).status_code == 302
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.ATTACHING and volume.attached_to == server
    op = Operation.objects.get(volume=volume)
    assert (op.action, op.params["instance_id"]) == ("volume_attach", str(server.pk))
    assert _attach(client, project, volume, server).status_code == 302  # under way: the same operation
    assert Operation.objects.filter(volume=volume).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.VOLUME_ATTACHED).count() == 1
    assert "web-1" in client.get(_url(project)).content.decode()


def test_attaching_a_volume_already_attached_there_is_a_409(project, member, client_as, volume, server):
    _attached(volume, server)
    response = _attach(client_as(member), project, volume, server)
    assert response.status_code == 409
    assert "data is already attached to web-1." in response.content.decode()
    assert Operation.objects.filter(volume=volume, state="pending").count() == 0


def test_attach_only_in_the_same_zone(project, member, client_as, volume, catalog):
    far = InstanceFactory(project=project, name="far", zone=catalog["iad1-a"], status="running")
    response = _attach(client_as(member), project, volume, far)
    assert response.status_code == 409
    assert (
        "data is in fra1-a and far in iad1-a: a volume can only be attached to a server in its own zone."
        in response.content.decode()
    )
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.AVAILABLE and volume.attached_to is None


@pytest.mark.parametrize("status", ["pending", "rebooting", "error", "terminating"])
def test_attach_only_to_running_or_stopped_servers(project, member, client_as, volume, fra, status):
    busy = InstanceFactory(project=project, name="busy", zone=fra, status=status)
    response = _attach(client_as(member), project, volume, busy)
    assert response.status_code == 409
    assert "volumes can be attached to running or stopped servers" in response.content.decode()


def test_attach_to_a_stopped_server(project, member, client_as, volume, fra):
    stopped = InstanceFactory(project=project, zone=fra, status="stopped")
    assert _attach(client_as(member), project, volume, stopped).status_code == 302


def test_a_volume_attached_elsewhere_must_be_detached_first(project, member, client_as, volume, server, fra):
    other = InstanceFactory(project=project, name="web-2", zone=fra, status="running")
    client = client_as(member)
    _attached(volume, server)
    response = _attach(client, project, volume, other)
    assert response.status_code == 409
    assert "data is attached to web-1: detach it first." in response.content.decode()


def test_attach_to_a_server_of_another_organization_is_refused(project, member, client_as, volume, fra):
    theirs = InstanceFactory(zone=fra, status="running")
    response = _attach(client_as(member), project, volume, theirs)
    assert response.status_code == 400
    assert "Choose one of the servers listed." in response.content.decode()
    volume.refresh_from_db()
    assert volume.attached_to is None
    garbage = client_as(member).post(
        _url(project, "compute:volume_attach", volume.pk), {"instance": "not-a-uuid"}
    )
    assert garbage.status_code == 400


def test_attach_is_refused_when_the_policy_no_longer_allows_the_zone(
    org, project, member, client_as, catalog
):
    iad = catalog["iad1-a"]
    volume = Volume.objects.create(project=project, name="us-data", zone=iad, size_gib=10, status="available")
    server = InstanceFactory(project=project, zone=iad, status="running")
    _eu_only(org)  # tightened after both were placed
    response = _attach(client_as(member), project, volume, server)
    assert response.status_code == 403
    assert "Blocked by organization policy" in response.content.decode()
    assert AuditEvent.objects.get(action=AuditAction.PLACEMENT_DENIED).changes["attempted"] == [
        None,
        f"attach volume us-data to {server.name}",
    ]
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.AVAILABLE


def test_detach_and_detach_again_is_a_no_op(project, member, client_as, volume, server):
    client = client_as(member)
    _attached(volume, server)
    url = _url(project, "compute:volume_detach", volume.pk)
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 302
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.DETACHING and volume.attached_to == server
    op = Operation.objects.get(volume=volume, action="volume_detach")
    assert client.post(url).status_code == 302  # under way: the same operation
    assert list(Operation.objects.filter(volume=volume, action="volume_detach")) == [op]
    assert AuditEvent.objects.filter(action=AuditAction.VOLUME_DETACHED).count() == 1


def test_detaching_a_volume_that_is_not_attached_is_a_409(project, member, client_as, volume):
    response = client_as(member).post(_url(project, "compute:volume_detach", volume.pk))
    assert response.status_code == 409
    assert "data is not attached to a server." in response.content.decode()
    assert not Operation.objects.exists()


# --- Deleting ---------------------------------------------------------------------------------


def test_delete_is_refused_while_attached(project, member, client_as, volume, server):
    client = client_as(member)
    _attached(volume, server)
    response = client.post(_url(project, "compute:volume_delete", volume.pk))
    assert response.status_code == 409
    assert "data is attached to web-1: detach it first." in response.content.decode()
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.IN_USE and volume.deleted_at is None


def test_delete_asks_the_cloud_and_once_deleted_is_404(project, member, client_as, volume):
    client = client_as(member)
    url = _url(project, "compute:volume_delete", volume.pk)
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 302
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.DELETING and volume.deleted_at is None  # until the cloud says
    assert client.post(url).status_code == 302  # under way: the same operation
    assert Operation.objects.filter(volume=volume, action="volume_delete").count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.VOLUME_DELETED, target_repr="data").count() == 1
    Volume.objects.filter(pk=volume.pk).update(status="deleted")  # what the finished operation leaves
    assert client.post(url).status_code == 404
    assert client.post(_url(project, "compute:volume_detach", volume.pk)).status_code == 404
    assert "No volumes yet" in client.get(_url(project)).content.decode()


# --- Roles ------------------------------------------------------------------------------------


def test_viewer_sees_volumes_without_forms_and_may_not_change_them(
    project, viewer, client_as, volume, server
):
    client = client_as(viewer)
    page = client.get(_url(project))
    assert page.status_code == 200
    body = page.content.decode().split('id="main"')[1]
    assert "data" in body and "<form" not in body and "New volume" not in body
    detail = (
        client.get(_url(project, "compute:volume_detail", volume.pk)).content.decode().split('id="main"')[1]
    )
    assert "data" in detail and "<form" not in detail
    for url, data in (
        (_url(project), {"name": "mine", "size_gib": "1", "zone": server.zone_id}),
        (_url(project, "compute:volume_attach", volume.pk), {"instance": str(server.pk)}),
        (_url(project, "compute:volume_detach", volume.pk), {}),
        (_url(project, "compute:volume_delete", volume.pk), {}),
        (_url(project, "compute:volume_extend", volume.pk), {"size_gib": "200"}),
    ):
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert b"Viewer" in response.content
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.AVAILABLE and Volume.objects.count() == 1
    assert not Operation.objects.exists()


def test_another_projects_volume_is_404(org, project, member, outsider, client_as, volume):
    other = ProjectFactory(organization=org, slug="other")
    assert client_as(member).post(_url(other, "compute:volume_delete", volume.pk)).status_code == 404
    assert client_as(outsider).post(_url(project, "compute:volume_delete", volume.pk)).status_code == 404
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.AVAILABLE


# --- The volumes made before they reached the cloud ---------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_turns_record_only_volumes_into_errors_no_longer_billed(catalog):
    """Rows that no cloud ever held: errors that say so, detached, their billing closed; deleted
    ones and their history stay as they were."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    from portal.metering.models import UsageSegment  # its table is not changed here

    before, after = ("compute", "0005_firewall_rule_unique"), ("compute", "0007_record_only_volumes_to_error")
    # The server is made with today's schema (its factory knows no other); its row stays.
    project = ProjectFactory()
    zone = catalog["fra1-a"]
    server = InstanceFactory(project=project, zone=zone)
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    try:
        OldVolume = executor.loader.project_state([before]).apps.get_model("compute", "Volume")
        attached = OldVolume.objects.create(
            project_id=project.pk,
            name="a",
            zone_id=zone.pk,
            size_gib=10,
            status="in_use",
            attached_to_id=server.pk,
        )
        gone = OldVolume.objects.create(
            project_id=project.pk, name="g", zone_id=zone.pk, size_gib=5, status="deleted"
        )
        for volume, ended in ((attached, None), (gone, timezone.now())):
            UsageSegment.objects.create(
                organization_id=project.organization_id,
                project_id=project.pk,
                resource_type="volume",
                resource_id=volume.pk,
                resource_name=volume.name,
                zone_id=zone.pk,
                meter="volume",
                quantity=volume.size_gib,
                unit_price="0.000137",
                started_at=timezone.now(),
                ended_at=ended,
            )
        MigrationExecutor(connection).migrate([after])
    finally:
        # The rest of the way whatever happened: the tests after this one need every table.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    migrated = Volume.objects.get(pk=attached.pk)
    assert (migrated.status, migrated.attached_to, migrated.fault_message) == (
        "error",
        None,
        "This volume was never created in the cloud; it is no longer billed.",
    )
    assert Volume.objects.get(pk=gone.pk).status == "deleted"
    assert not UsageSegment.objects.filter(ended_at=None).exists()
    from portal.compute.quota import project_usage

    assert project_usage(project).volume_gib == 0
