"""Copying an image to another region over the API: the same service, rules and words as the page;
members copy, viewers don't; one copy per Idempotency-Key; a forbidden region is 403 with the
policy's reason and audited; the copy targets are listed with their reasons and the price."""

from __future__ import annotations

import uuid

import pytest

from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Region
from portal.compute.models import Operation, Snapshot, SnapshotStatus
from portal.residency.models import ResidencyPolicy
from tests.api.conftest import assert_problem
from tests.factories import InstanceFactory, ProjectFactory
from tests.steps import drive


@pytest.fixture
def golden(project):
    """An available server snapshot in fra1-a, as the cloud made it."""
    server = InstanceFactory(project=project, name="web-1", backend_id="sim-x")
    return Snapshot.objects.create(
        project=project,
        zone=server.zone,
        name="golden",
        kind="server",
        source_instance=server,
        status=SnapshotStatus.AVAILABLE,
        backend_id="simsnap-golden",
        image_ref="simimg-golden",
        size_gib=10,
        min_disk_gib=10,
    )


def test_copy_with_an_idempotency_key_makes_one_copy(owner_api, golden):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = owner_api.post(f"snapshots/{golden.pk}/copies", {"zone": "ams1-a"}, headers=key)
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["zone"], body["region"], body["copied_from"], body["status"], body["name"]) == (
        "ams1-a",
        "Amsterdam",
        str(golden.pk),
        "creating",
        "golden-ams1-a",
    )
    again = owner_api.post(f"snapshots/{golden.pk}/copies", {"zone": "ams1-a"}, headers=key)
    assert again.status_code == 201 and again.json()["id"] == body["id"]
    assert Snapshot.objects.filter(copied_from=golden).count() == 1
    assert Operation.objects.filter(snapshot_id=body["id"], action="snapshot_copy").count() == 1


def test_a_forbidden_region_is_403_with_the_reason_and_audited(owner_api, org, golden):
    policy = ResidencyPolicy.objects.create(organization=org, name="Frankfurt only")
    policy.regions.set(Region.objects.filter(code="fra1"))
    body = assert_problem(owner_api.post(f"snapshots/{golden.pk}/copies", {"zone": "ams1-a"}), 403)
    assert "Amsterdam is not one of the allowed regions (Frankfurt)" in body["detail"]
    assert not Snapshot.objects.filter(copied_from=golden).exists()
    assert AuditEvent.objects.filter(action=AuditAction.PLACEMENT_DENIED).count() == 1
    targets = owner_api.get(f"snapshots/{golden.pk}/copy-targets").json()
    ams = next(t for t in targets["items"] if t["zone"] == "ams1-a")
    assert (ams["allowed"], ams["by_policy"]) == (False, True) and "Blocked by" in ams["reason"]
    assert targets["price_monthly"] and targets["currency"] == "EUR"


@pytest.mark.parametrize(
    ("zone", "status", "words"),
    [("fra1-b", 422, "already in Frankfurt"), ("nowhere-z", 422, "There is no zone nowhere-z")],
)
def test_bad_input_is_a_clear_4xx(owner_api, golden, zone, status, words):
    body = assert_problem(owner_api.post(f"snapshots/{golden.pk}/copies", {"zone": zone}), status)
    assert words in body["detail"]
    assert Snapshot.objects.count() == 1


def test_not_yet_available_and_without_the_capability_are_409(owner_api, golden, catalog):
    Snapshot.objects.filter(pk=golden.pk).update(status=SnapshotStatus.CREATING)
    body = assert_problem(owner_api.post(f"snapshots/{golden.pk}/copies", {"zone": "ams1-a"}), 409)
    assert "not available yet" in body["detail"]
    Snapshot.objects.filter(pk=golden.pk).update(status=SnapshotStatus.AVAILABLE)
    catalog["ams1-a"].backend_settings = {"absent": ["image_copy"]}
    catalog["ams1-a"].save()
    body = assert_problem(owner_api.post(f"snapshots/{golden.pk}/copies", {"zone": "ams1-a"}), 409)
    assert body["detail"] == "Image copies between regions are not available in ams1-a."
    assert Snapshot.objects.count() == 1


def test_a_viewer_may_not_copy_and_another_projects_image_is_not_found(
    org, project, viewer, owner, golden, catalog, knobs, token_for
):
    _, api = token_for(viewer, org)
    assert_problem(api.post(f"snapshots/{golden.pk}/copies", {"zone": "ams1-a"}), 403)
    other = ProjectFactory(organization=org, slug="elsewhere")
    _, scoped = token_for(owner, org, project=other)
    assert_problem(scoped.post(f"snapshots/{golden.pk}/copies", {"zone": "ams1-a"}), 404)
    assert Snapshot.objects.count() == 1


def test_the_copy_becomes_available_and_the_schema_documents_the_endpoints(owner_api, golden):
    from portal.compute.backends import get_backend
    from portal.compute.models import SimulatedSnapshot

    # The source as the simulated cloud holds it.
    SimulatedSnapshot.objects.create(
        backend_id=golden.backend_id,
        idempotency_key=str(golden.pk),
        zone_code="fra1-a",
        name="golden",
        source="server",
        source_id="sim-x",
        size_gib=10,
        min_disk_gib=10,
        image_ref=golden.image_ref,
        state="available",
    )
    assert get_backend("simulated").get_snapshot(golden.backend_id).state == "available"
    body = owner_api.post(f"snapshots/{golden.pk}/copies", {"zone": "ams1-a"}).json()
    drive(Operation.objects.get(snapshot_id=body["id"]))
    shown = owner_api.get(f"snapshots/{body['id']}").json()
    assert shown["status"] == "available" and shown["image"]
    paths = owner_api.get("openapi.json").json()["paths"]
    assert "post" in paths["/api/v1/snapshots/{snapshot_id}/copies"]
    assert "get" in paths["/api/v1/snapshots/{snapshot_id}/copy-targets"]
