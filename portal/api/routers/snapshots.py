"""Snapshots, the project's images and servers' backup schedules, through the services of
portal.compute.services (as the web pages): same rules, refusals and wording."""

from uuid import UUID

from django.conf import settings
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Router, Status

from portal.api.access import find_project, token_org_access, token_project_access, token_projects
from portal.api.errors import ApiProblem
from portal.api.idempotency import idempotency_claim
from portal.api.routers.common import api_url, get_instance, instance_out, operation_ref, token_of
from portal.api.schemas import (
    ActionOut,
    BackupScheduleIn,
    BackupScheduleOut,
    CopyTargetList,
    CopyTargetOut,
    Problem,
    ProjectImageList,
    ProjectImageOut,
    RestoreIn,
    SnapshotCopyIn,
    SnapshotIn,
    SnapshotList,
    SnapshotOut,
)
from portal.catalog.models import Image, Zone
from portal.compute.image_copy import copy_price_monthly, copy_targets, source_problems
from portal.compute.models import (
    BackupSchedule,
    Instance,
    InstanceStatus,
    Operation,
    Snapshot,
    SnapshotStatus,
    Volume,
)
from portal.compute.services.backups import backup_schedule_set
from portal.compute.services.image_copy import snapshot_copy
from portal.compute.services.restores import instance_restore_disk
from portal.compute.services.snapshots import image_delete, snapshot_create, snapshot_delete
from portal.compute.snapshot_rules import snapshot_price_monthly
from portal.tenancy.access import Perm

router = Router(tags=["snapshots"])
ERRORS = {401: Problem, 403: Problem, 404: Problem, 409: Problem, 422: Problem, 429: Problem}


def _snapshots():
    return Snapshot.objects.existing().select_related("zone__region", "image")


def snapshot_out(request: HttpRequest, snapshot: Snapshot) -> SnapshotOut:
    return SnapshotOut(
        id=snapshot.pk,
        project=snapshot.project_id,
        name=snapshot.name,
        kind=snapshot.kind,
        zone=snapshot.zone.code,
        region=snapshot.zone.region.name,
        status=snapshot.status,
        source_server=snapshot.source_instance_id,
        source_volume=snapshot.source_volume_id,
        size_gib=snapshot.size_gib,
        image=snapshot.image_id if snapshot.image_id and snapshot.image.is_active else None,
        copied_from=snapshot.copied_from_id,
        price_monthly=snapshot_price_monthly(snapshot.size_gib),
        currency=settings.PORTAL_CURRENCY,
        fault_message=snapshot.fault_message,
        created_at=snapshot.created_at,
        url=api_url(request, f"snapshots/{snapshot.pk}"),
    )


def _reached(request: HttpRequest, queryset, project: str | None):
    token = token_of(request)
    if project:
        found = find_project(token, project)
        token_project_access(token, found)
        return queryset.filter(project=found)
    token_org_access(token, Perm.PROJECT_VIEW)
    return queryset.filter(project__in=token_projects(token))


def _get_snapshot(request: HttpRequest, snapshot_id: UUID, perm: Perm = Perm.PROJECT_VIEW):
    token = token_of(request)
    snapshot = _snapshots().filter(project__in=token_projects(token), pk=snapshot_id).first()
    if snapshot is None:
        raise Http404("No such snapshot.")
    return snapshot, token_project_access(token, snapshot.project, perm)


@router.get("/snapshots", response={200: SnapshotList, **ERRORS}, summary="List snapshots and backups")
def list_snapshots(request: HttpRequest, project: str | None = None):
    rows = _reached(request, _snapshots(), project).order_by("project", "-created_at")
    return SnapshotList(items=[snapshot_out(request, s) for s in rows])


def _source(access, body: SnapshotIn) -> dict:
    if (body.server is None) == (body.volume is None):
        message = "Give either the server or the volume to snapshot."
        raise ApiProblem(
            422, message, kind="invalid-request", errors=[{"field": "server", "message": message}]
        )
    if body.server is not None:
        instance = (
            Instance.objects.filter(project=access.project, pk=body.server)
            .exclude(status=InstanceStatus.TERMINATED)
            .first()
        )
        if instance is None:
            raise Http404("No such server.")
        return {"instance": instance}
    volume = Volume.objects.existing().filter(project=access.project, pk=body.volume).first()
    if volume is None:
        raise Http404("No such volume.")
    return {"volume": volume}


@router.post("/snapshots", response={201: SnapshotOut, **ERRORS}, summary="Take a snapshot")
def create_snapshot(request: HttpRequest, response: HttpResponse, body: SnapshotIn):
    """Of a server (its disk becomes an image of the project, in the server's zone) or of a volume.
    409 when the server is busy (being resized, terminated…) or the zone has no snapshots."""
    with idempotency_claim(request, response) as claim:
        snapshot = claim.replayed(_reached(request, _snapshots(), None))
        if snapshot is None:
            token = token_of(request)
            access = token_project_access(token, find_project(token, body.project), Perm.RESOURCE_CREATE)
            op = snapshot_create(access=access, name=body.name, request=request, **_source(access, body))
            snapshot = claim.remember(op.snapshot)
    return Status(201, snapshot_out(request, _snapshots().get(pk=snapshot.pk)))


@router.get("/snapshots/{snapshot_id}", response={200: SnapshotOut, **ERRORS}, summary="Get a snapshot")
def get_snapshot(request: HttpRequest, snapshot_id: UUID):
    snapshot, _ = _get_snapshot(request, snapshot_id)
    return snapshot_out(request, snapshot)


@router.delete("/snapshots/{snapshot_id}", response={204: None, **ERRORS}, summary="Delete a snapshot")
def delete_snapshot(request: HttpRequest, snapshot_id: UUID):
    """The image it is goes with it. 409 while it is still being taken."""
    snapshot, access = _get_snapshot(request, snapshot_id, Perm.RESOURCE_OPERATE)
    snapshot_delete(access=access, snapshot=snapshot, request=request)
    return Status(204, None)


@router.get(
    "/snapshots/{snapshot_id}/copy-targets",
    response={200: CopyTargetList, **ERRORS},
    summary="Where an image can be copied",
)
def list_copy_targets(request: HttpRequest, snapshot_id: UUID):
    """The zones of other regions of the image's cloud, each allowed or not with the reason (the
    residency policy's for a forbidden region), and the copy's price."""
    snapshot, access = _get_snapshot(request, snapshot_id)
    targets = copy_targets(snapshot, access.project)
    return CopyTargetList(
        price_monthly=copy_price_monthly(snapshot),
        currency=settings.PORTAL_CURRENCY,
        unavailable=" ".join(p.message for p in source_problems(snapshot)),
        items=[
            CopyTargetOut(
                zone=t.zone.code,
                region=t.zone.region.name,
                allowed=t.allowed,
                reason=t.refusal,
                by_policy=t.by_policy,
            )
            for t in targets
        ],
    )


@router.post(
    "/snapshots/{snapshot_id}/copies",
    response={201: SnapshotOut, **ERRORS},
    summary="Copy an image to another region",
)
def copy_snapshot(request: HttpRequest, response: HttpResponse, snapshot_id: UUID, body: SnapshotCopyIn):
    """A new snapshot (an image of its own) in `zone`, of another region of the same cloud, billed
    there once available. 403 with the residency policy's reason when it forbids the region (audited);
    422 for the same region or an unknown zone, 404 for another project's image, 409 when the image is
    not available yet or a zone cannot copy images. Honours `Idempotency-Key`."""
    with idempotency_claim(request, response) as claim:
        copy = claim.replayed(_reached(request, _snapshots(), None))
        if copy is None:
            snapshot, access = _get_snapshot(request, snapshot_id, Perm.RESOURCE_CREATE)
            zone = Zone.objects.filter(code=body.zone).first()
            if zone is None:
                message = f"There is no zone {body.zone}."
                raise ApiProblem(
                    422, message, kind="invalid-request", errors=[{"field": "zone", "message": message}]
                )
            op = snapshot_copy(access=access, snapshot=snapshot, zone=zone, name=body.name, request=request)
            copy = claim.remember(op.snapshot)
    return Status(201, snapshot_out(request, _snapshots().get(pk=copy.pk)))


# --- images -----------------------------------------------------------------------------------


def image_out(image: Image) -> ProjectImageOut:
    snapshot = getattr(image, "snapshot", None)
    return ProjectImageOut(
        id=image.pk,
        name=image.name,
        os_family=image.os_family,
        version=image.version,
        min_disk_gib=image.min_disk_gib,
        project=image.project_id,
        snapshot=snapshot.pk if snapshot else None,
        zones=sorted(z.code for z in image.zones.all()),
    )


@router.get("/images", response={200: ProjectImageList, **ERRORS}, summary="List images to launch from")
def list_launchable_images(request: HttpRequest, project: str | None = None):
    """The public catalog and the projects' own images (snapshots, uploads for you); `project`
    narrows to one project's."""
    token = token_of(request)
    if project:
        found = find_project(token, project)
        token_project_access(token, found)
        mine = Q(project=found)
    else:
        token_org_access(token, Perm.PROJECT_VIEW)
        mine = Q(project__in=token_projects(token))
    images = (
        Image.objects.filter(Q(project__isnull=True) | mine, is_active=True)
        .select_related("snapshot")
        .prefetch_related("zones")
        .order_by("project", "name")
    )
    return ProjectImageList(items=[image_out(i) for i in images])


@router.delete("/images/{image_id}", response={204: None, **ERRORS}, summary="Delete a project's image")
def delete_image(request: HttpRequest, image_id: int):
    """Only a project's own image; 409 with the reason when servers with scheduled backups need it
    or it was provided by the operator."""
    token = token_of(request)
    image = Image.objects.filter(project__in=token_projects(token), pk=image_id, is_active=True).first()
    if image is None:
        raise Http404("No such image.")
    access = token_project_access(token, image.project, Perm.RESOURCE_OPERATE)
    image_delete(access=access, image=image, request=request)
    return Status(204, None)


# --- backup schedules -------------------------------------------------------------------------


def schedule_out(instance: Instance, schedule: BackupSchedule | None) -> BackupScheduleOut:
    schedule = schedule or BackupSchedule(instance=instance, enabled=False)
    backups = (
        list(
            Snapshot.objects.filter(schedule=schedule.pk, status=SnapshotStatus.AVAILABLE)
            .order_by("-created_at")
            .values_list("pk", flat=True)
        )
        if schedule.pk
        else []
    )
    return BackupScheduleOut(
        server=instance.pk,
        frequency=schedule.frequency,
        hour=schedule.hour,
        weekday=schedule.weekday,
        keep=schedule.keep,
        enabled=schedule.enabled,
        next_run_at=schedule.next_run_at,
        backups=backups,
    )


@router.get(
    "/instances/{instance_id}/backup-schedule",
    response={200: BackupScheduleOut, **ERRORS},
    summary="Get a server's backup schedule",
)
def get_backup_schedule(request: HttpRequest, instance_id: UUID):
    instance, _ = get_instance(request, instance_id)
    return schedule_out(instance, BackupSchedule.objects.filter(instance=instance).first())


@router.put(
    "/instances/{instance_id}/backup-schedule",
    response={200: BackupScheduleOut, **ERRORS},
    summary="Set a server's backup schedule",
)
def put_backup_schedule(request: HttpRequest, instance_id: UUID, body: BackupScheduleIn):
    """Every problem at once (keep 0, an hour out of range, weekly without a day); 409 when the
    server's zone has no server snapshots. `enabled: false` stops taking backups and keeps those taken."""
    instance, access = get_instance(request, instance_id, Perm.RESOURCE_OPERATE)
    schedule = backup_schedule_set(
        access=access,
        instance=instance,
        frequency=body.frequency,
        hour=body.hour,
        weekday=body.weekday,
        keep=body.keep,
        enabled=body.enabled,
        request=request,
    )
    return schedule_out(instance, schedule)


@router.post(
    "/instances/{instance_id}/restore",
    response={202: ActionOut, **ERRORS},
    summary="Restore a server's disk from a snapshot or backup",
)
def restore_instance_disk(request: HttpRequest, response: HttpResponse, instance_id: UUID, body: RestoreIn):
    """Replace the server's disk by a snapshot's or backup's of it (or one of the project's images)
    in its zone: everything written since is lost, a running server restarts, a stopped one stays
    stopped. `confirm_name` is the server's name. 404 for another project's snapshot; 400 for one in
    another zone or too large for the disk, or a wrong name; 409 while the snapshot is being taken
    or the server is busy (all reasons at once). Send an Idempotency-Key to retry safely."""
    token = token_of(request)
    with idempotency_claim(request, response) as claim:
        operation = claim.replayed(Operation.objects.filter(instance__project__in=token_projects(token)))
        if operation is None:
            instance, access = get_instance(request, instance_id, Perm.RESOURCE_OPERATE)
            snapshot = image = None
            if body.snapshot is not None:
                snapshot = _snapshots().filter(pk=body.snapshot, project=instance.project).first()
                if snapshot is None:
                    raise Http404("No such snapshot or backup in this project.")
            if body.image is not None:
                image = (
                    Image.objects.filter(pk=body.image)
                    .filter(Q(project=instance.project) | Q(project=None))
                    .first()
                )
                if image is None:
                    raise Http404("No such image in this project.")
            operation = claim.remember(
                instance_restore_disk(
                    access=access,
                    instance=instance,
                    snapshot=snapshot,
                    image=image,
                    confirm_name=body.confirm_name,
                    request=request,
                )
            )
    instance = Instance.objects.with_catalog().get(pk=operation.instance_id)
    return Status(
        202, ActionOut(operation=operation_ref(request, operation), instance=instance_out(request, instance))
    )
