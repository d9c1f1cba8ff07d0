"""Copying a project's image into another region: a new snapshot (and image) in the target zone,
linked to its source, through the one pipeline, billed in its own region, audited; the target is a
placement under the residency policy, refused with its reason and audited; bad input is a clear
4xx with nothing changed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied

from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Region, Zone
from portal.compute.backends import get_backend
from portal.compute.models import (
    Operation,
    SimulatedSnapshot,
    Snapshot,
    SnapshotKind,
    SnapshotStatus,
)
from portal.compute.operations import OPERATIONS
from portal.compute.services.common import ComputeRefused
from portal.compute.services.image_copy import snapshot_copy
from portal.compute.services.snapshots import snapshot_create
from portal.metering.models import Meter, UsageSegment
from portal.residency.models import ResidencyPolicy
from portal.residency.placement import PlacementDenied
from portal.tenancy.access import project_access
from tests.compute.test_snapshots import server  # noqa: F401 - a running server in fra1-a
from tests.factories import ProjectFactory
from tests.steps import drive


@pytest.fixture
def image(access, server):  # noqa: F811
    op = snapshot_create(access=access, instance=server, name="golden")
    drive(op)
    return Snapshot.objects.get(pk=op.snapshot_id)


def _copy(access, image, code="ams1-a", **extra) -> Snapshot:
    op = snapshot_copy(access=access, snapshot=image, zone=Zone.objects.get(code=code), **extra)
    assert op.action == "snapshot_copy"
    drive(op)
    return Snapshot.objects.get(pk=op.snapshot_id)


def test_a_copy_is_a_new_image_in_the_target_region(access, image, settings):
    copy = _copy(access, image)
    assert (copy.status, copy.kind, copy.zone.code, copy.copied_from) == (
        SnapshotStatus.AVAILABLE,
        SnapshotKind.SERVER,
        "ams1-a",
        image,
    )
    assert copy.name == "golden-ams1-a" and copy.backend_id != image.backend_id
    assert copy.size_gib == image.size_gib and copy.min_disk_gib == image.min_disk_gib
    # Its own image, launchable in the target zone only; the source's stays where it was.
    assert copy.image.project == image.project and list(copy.image.zones.values_list("code", flat=True)) == [
        "ams1-a"
    ]
    assert (
        copy.image.backend_ref("ams1-a") == copy.image_ref and copy.image.os_family == image.image.os_family
    )
    assert list(image.image.zones.values_list("code", flat=True)) == ["fra1-a"]
    row = SimulatedSnapshot.objects.get(backend_id=copy.backend_id)
    assert (row.zone_code, row.source_id) == ("ams1-a", image.backend_id)
    # Metered as snapshot storage, in its own zone.
    segment = UsageSegment.objects.get(resource_id=copy.pk)
    assert (segment.meter, segment.quantity, segment.unit_price, segment.zone.code) == (
        Meter.SNAPSHOT,
        Decimal(image.size_gib),
        settings.PORTAL_SNAPSHOT_PRICE_GIB_HOUR,
        "ams1-a",
    )
    event = AuditEvent.objects.get(action=AuditAction.SNAPSHOT_COPIED)
    assert event.changes["from"] == [None, "fra1-a"] and event.changes["zone"] == [None, "ams1-a"]


def test_a_retried_submit_adopts_the_first_copy(access, image):
    op = snapshot_copy(access=access, snapshot=image, zone=Zone.objects.get(code="ams1-a"))
    OPERATIONS["snapshot_copy"].submit(get_backend("simulated"), [op])  # the worker died after this
    drive(op)
    OPERATIONS["snapshot_copy"].submit(get_backend("simulated"), [op])
    assert SimulatedSnapshot.objects.filter(idempotency_key=str(op.snapshot_id)).count() == 1


def test_a_failed_copy_is_an_error_and_not_billed(access, image, knobs):
    copy = _copy(access, image, name="will-fail-copy")
    assert copy.status == SnapshotStatus.ERROR and copy.fault_message
    assert copy.image is None
    assert not UsageSegment.objects.filter(resource_id=copy.pk, ended_at=None).exists()


# --- residency --------------------------------------------------------------------------------


def test_a_region_the_policy_forbids_is_refused_with_its_reason_and_audited(access, image, org):
    policy = ResidencyPolicy.objects.create(organization=org, name="Frankfurt only")
    policy.regions.set(Region.objects.filter(code="fra1"))
    before = (Snapshot.objects.count(), Operation.objects.count())
    with pytest.raises(PlacementDenied) as denied:
        snapshot_copy(access=access, snapshot=image, zone=Zone.objects.get(code="ams1-a"))
    reason = "Amsterdam is not one of the allowed regions (Frankfurt)"
    assert reason in denied.value.decision.reason
    assert (Snapshot.objects.count(), Operation.objects.count()) == before
    event = AuditEvent.objects.get(action=AuditAction.PLACEMENT_DENIED)
    assert event.changes["attempted"] == [None, "copy of image golden to ams1-a"]
    assert reason in event.changes["reason"][1]
    assert not AuditEvent.objects.filter(action=AuditAction.SNAPSHOT_COPIED).exists()


# --- bad input: a clear 4xx, nothing changed --------------------------------------------------


def _refused(access, image, code, **extra) -> ComputeRefused:
    before = (Snapshot.objects.count(), Operation.objects.count(), AuditEvent.objects.count())
    with pytest.raises(ComputeRefused) as refused:
        snapshot_copy(access=access, snapshot=image, zone=Zone.objects.get(code=code), **extra)
    assert (Snapshot.objects.count(), Operation.objects.count(), AuditEvent.objects.count()) == before
    return refused.value


def test_an_image_of_another_project_is_not_found(access, image, org, owner):
    other = project_access(owner, org.slug, ProjectFactory(organization=org, slug="other").slug)
    assert _refused(other, image, "ams1-a").status == 404


def test_the_same_region_is_refused(access, image):
    refused = _refused(access, image, "fra1-b")
    assert refused.status == 400 and "already in Frankfurt" in refused.message


def test_an_image_not_yet_available_is_refused(access, server):  # noqa: F811
    op = snapshot_create(access=access, instance=server, name="not-yet")
    refused = _refused(access, op.snapshot, "ams1-a")
    assert refused.status == 409 and "not available yet" in refused.message


def test_a_zone_without_the_capability_says_so_in_plain_words(access, image):
    Zone.objects.filter(code="ams1-a").update(backend_settings={"absent": ["image_copy"]})
    refused = _refused(access, image, "ams1-a")
    assert refused.status == 409
    assert refused.message == "Image copies between regions are not available in ams1-a."


def test_a_zone_of_another_cloud_is_refused(access, image):
    Zone.objects.filter(code="ams1-a").update(backend="libvirt")
    refused = _refused(access, image, "ams1-a")
    assert refused.status == 409 and "another cloud" in refused.message


def test_every_problem_at_once(access, image):
    Snapshot.objects.filter(pk=image.pk).update(status=SnapshotStatus.CREATING)
    Zone.objects.filter(code="ams1-a").update(backend_settings={"absent": ["image_copy"]})
    refused = _refused(access, image, "ams1-a", name="bad\nname")
    assert len(refused.problems) == 3 and refused.status == 400


def test_a_second_copy_with_the_same_name_is_refused(access, image):
    _copy(access, image)
    refused = _refused(access, image, "ams1-a")
    assert refused.status == 409 and "already has a snapshot named" in refused.message


def test_a_viewer_may_not_copy(image, project, viewer):
    access = project_access(viewer, project.organization.slug, project.slug)
    with pytest.raises(PermissionDenied):
        snapshot_copy(access=access, snapshot=image, zone=Zone.objects.get(code="ams1-a"))
    assert Snapshot.objects.count() == 1


def test_the_attestation_lists_the_copy_where_and_since_when(access, image, org, owner, client_as):
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    from portal.statements.attestation import attestation_build

    copy = _copy(access, image)
    now = timezone.now() + timedelta(minutes=1)
    attestation = attestation_build(organization=org, start=now - timedelta(days=1), end=now, now=now)
    listed = {r.resource_id: r for r in attestation.resources}
    entry = listed[str(copy.pk)]
    assert entry.copied_from == "golden in fra1-a" and entry.is_image
    assert [(p.zone.code, p.allowed) for p in entry.placements] == [("ams1-a", True)]
    started = UsageSegment.objects.get(resource_id=copy.pk).started_at
    assert entry.placements[0].start == started
    assert [p.zone.code for p in listed[str(image.pk)].placements] == ["fra1-a"]  # the source stays
    page = client_as(owner).get(reverse("statements:org_attestation", args=[org.slug]))
    assert page.status_code == 200 and "a copy of golden in fra1-a" in page.content.decode()
