"""Copy a project's image (a server snapshot or a backup) into a zone of another region: a new
snapshot of the project in that zone, linked to its source (`Snapshot.copied_from`), made in the
cloud by a `snapshot_copy` operation (compute/operations/snapshots.py) and billed in its own region
once available. The target zone is a placement under the residency policy, refused and audited
as launches are; a refused request changes nothing."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.http import HttpRequest

from portal.audit.models import AuditAction
from portal.catalog.models import Zone
from portal.compute.image_copy import copy_name, source_problems, target_problems
from portal.compute.models import Action, Operation, Snapshot, SnapshotKind, SnapshotStatus
from portal.compute.models.operations import operation_deadline
from portal.compute.services.common import ComputeRefused, Problem, audit, enqueue_on_commit, lock_project
from portal.compute.services.snapshots import snapshot_name_problems
from portal.residency.placement import PlacementDenied, placement_decision
from portal.residency.services import record_placement_denied
from portal.tenancy.access import Access, Perm


def snapshot_copy(
    *, access: Access, snapshot: Snapshot, zone: Zone, name: str = "", request: HttpRequest | None = None
) -> Operation:
    """The copy of `snapshot` in `zone`, made by the operation returned. Raises ComputeRefused
    (every reason at once) or PlacementDenied (audited as a denied placement)."""
    access.require(Perm.RESOURCE_CREATE)
    if snapshot.project_id != access.project.pk:
        raise ComputeRefused("Choose an image of this project.", status=404)
    with transaction.atomic():
        project = lock_project(access)
        source = (
            Snapshot.objects.select_for_update(of=("self",))
            .select_related("zone__region", "source_instance")
            .get(pk=snapshot.pk)
        )
        if source.status == SnapshotStatus.DELETED:
            raise ComputeRefused(f"{source.name} has been deleted.", status=404)
        zone = Zone.objects.select_related("region").get(pk=zone.pk)
        name = (name or "").strip() or copy_name(source, zone)
        problems = snapshot_name_problems(name) + source_problems(source) + target_problems(source, zone)
        if Snapshot.objects.existing().filter(project=project, name=name).exists():
            problems.append(Problem("name", f"The project already has a snapshot named “{name}”.", 409))
        if problems:  # bad input is the customer's to fix first, whatever the policy
            raise ComputeRefused.of(problems)
        decision = placement_decision(project, zone, lock=True)
        if decision.allowed:
            copy = Snapshot.objects.create(
                project=project,
                zone=zone,
                name=name,
                kind=SnapshotKind.SERVER,
                source_instance=source.source_instance,
                copied_from=source,
                min_disk_gib=source.min_disk_gib,
                created_by=access.membership.user,
            )
            audit(
                access,
                AuditAction.SNAPSHOT_COPIED,
                copy,
                {
                    "of": [None, source.name],
                    "from": [None, source.zone.code],
                    "zone": [None, zone.code],
                    "region": [None, zone.region.name],
                },
                request,
            )
            op = Operation.objects.create(
                snapshot=copy,
                action=Action.SNAPSHOT_COPY,
                requested_by=access.membership.user,
                deadline=operation_deadline(),
                step_token=uuid.uuid4().hex,
            )
            enqueue_on_commit([op])
            return op
    record_placement_denied(
        access=access,
        zone=zone,
        attempted=f"copy of image {source.name} to {zone.code}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)
