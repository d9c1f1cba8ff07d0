"""Pages of snapshots, backups and the project's own images: the project's Snapshots and Images
pages, a server's Backups page, and what the server page shows of them (`instance_storage`).
Each view checks access first and calls one service; a refusal re-renders the page with every
reason and the service's status."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from portal.catalog.models import Image
from portal.compute.backends import Capability
from portal.compute.models import (
    BackupFrequency,
    BackupSchedule,
    Instance,
    InstanceStatus,
    Snapshot,
    SnapshotKind,
    Volume,
)
from portal.compute.models.snapshots import KEEP_MAX, WEEKDAYS
from portal.compute.services.backups import backup_schedule_set
from portal.compute.services.common import ComputeRefused
from portal.compute.services.restores import instance_restore_disk, restore_choices, server_restore_problems
from portal.compute.services.snapshots import image_delete, image_problems, snapshot_create, snapshot_delete
from portal.compute.snapshot_rules import (
    capability_refusal,
    capability_refusals,
    server_snapshot_state_problems,
    snapshot_price_monthly,
)
from portal.compute.views.common import get_instance
from portal.lib.ids import as_id
from portal.residency.placement import PlacementDenied
from portal.tenancy.access import Access, Perm, project_access


def _base(access: Access) -> dict:
    return {
        "access": access,
        "org": access.organization,
        "project": access.project,
        "can_create": access.can(Perm.RESOURCE_CREATE),
        "can_operate": access.can(Perm.RESOURCE_OPERATE),
        "currency": settings.PORTAL_CURRENCY,
    }


def _with_prices(snapshots) -> list:
    for snapshot in snapshots:
        snapshot.price_monthly = snapshot_price_monthly(snapshot.size_gib)
    return snapshots


def instance_storage(instance: Instance, access: Access, refusals: dict | None = None) -> dict:
    """What the server page shows of its snapshots and backups: the lists, the schedule, the price
    of one more, and why the button is missing when the zone or the server's state refuses. Two
    queries (the snapshots, the zone's capabilities); the schedule comes with the server."""
    taken = _with_prices(
        list(
            Snapshot.objects.existing()
            .filter(source_instance=instance)
            .select_related("zone", "image")
            .order_by("-created_at")[:50]
        )
    )
    if refusals is None:  # (the server page asks the zone once for all its cards)
        refusals = capability_refusals(instance.zone, Capability.SERVER_SNAPSHOTS, Capability.SERVER_REBUILD)
    unavailable = refusals[Capability.SERVER_SNAPSHOTS]
    taking = any(s.status == "creating" for s in taken)
    refusal = ""
    if not unavailable:
        problems = server_snapshot_state_problems(instance, taking=taking)
        refusal = " ".join(p.message for p in problems)
    schedule = getattr(instance, "backup_schedule", None)
    restore = restore_context(
        instance, access, taken=taken, unavailable=refusals[Capability.SERVER_REBUILD], taking=taking
    )
    return restore | {
        "can_create": access.can(Perm.RESOURCE_CREATE),
        "values": schedule_values(schedule),
        "weekdays": list(enumerate(WEEKDAYS)),
        "hours": range(24),
        "keep_max": KEEP_MAX,
        "snapshots": [s for s in taken if s.kind == SnapshotKind.SERVER],
        "backups": [s for s in taken if s.kind == SnapshotKind.BACKUP],
        "schedule": schedule,
        "snapshot_refusal": refusal,
        "snapshots_unavailable": unavailable,
        "snapshot_price": snapshot_price_monthly(instance.root_disk_gib),
        # (also while the disk is restored: the form comes back when the server does)
        "snapshots_polling": any(s.is_transitional for s in taken)
        or instance.status == InstanceStatus.REBUILDING,
    }


def restore_context(
    instance: Instance, access: Access, *, taken: list, unavailable: str, taking: bool
) -> dict:
    """The "Restore disk" panel: what the disk may be restored from, or why it can't be now (from
    the snapshots and the zone's answer `instance_storage` has already: one query more, the images)."""
    if not access.can(Perm.RESOURCE_OPERATE) or instance.status == InstanceStatus.TERMINATED:
        return {"restore_shown": False}
    restoring = instance.status == InstanceStatus.REBUILDING
    problems = server_restore_problems(instance, unavailable=unavailable, taking=taking)
    refusal = "" if unavailable or restoring else " ".join(p.message for p in problems)
    return {
        "restore_shown": True,
        "restore_unavailable": unavailable,
        "restore_refusal": refusal,
        "restoring": restoring,
        "restore_choices": [] if unavailable or refusal or restoring else restore_choices(instance, taken),
    }


@login_required
@require_POST
def instance_restore(request: HttpRequest, org_slug: str, project_slug: str, instance_id) -> HttpResponse:
    """Restore the server's disk from the snapshot, backup or image chosen ("snapshot:<uuid>" or
    "image:<id>"), once its name is typed; a refusal shows the panel again with every reason."""
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    instance = get_instance(access, instance_id)
    kind, _, ref = request.POST.get("source", "").partition(":")
    snapshot = image = None
    if kind == "snapshot" and _is_uuid(ref):
        snapshot = Snapshot.objects.filter(pk=ref).select_related("zone__region", "image").first()
    elif kind == "image" and as_id(ref) is not None:
        image = Image.objects.filter(pk=as_id(ref)).first()
    if (kind and snapshot is None and image is None) or (
        (snapshot or image) and (snapshot or image).project_id != instance.project_id
    ):
        raise Http404("No such snapshot, backup or image in this project.")
    try:
        operation = instance_restore_disk(
            access=access,
            instance=instance,
            snapshot=snapshot,
            image=image,
            confirm_name=request.POST.get("confirm_name", ""),
            request=request,
        )
    except ComputeRefused as refused:
        context = _base(access) | instance_storage(instance, access) | {"instance": instance}
        context |= {
            "errors": [p.message for p in refused.problems],
            "restore_open": True,
            "restore_source": request.POST.get("source", ""),
        }
        return render(request, "compute/instance_backups.html", context, status=refused.status)
    messages.success(
        request,
        f"Restoring the disk of {instance.name} from {operation.params['source_name']}: "
        + (
            "it restarts when the disk is in place."
            if operation.params["then"] == "running"
            else "it stays stopped."
        ),
    )
    return redirect(instance.get_absolute_url())


# --- the project's snapshots ------------------------------------------------------------------


def _snapshots_page(request: HttpRequest, access: Access, *, errors=(), status: int = 200) -> HttpResponse:
    rows = (
        Snapshot.objects.existing()
        .filter(project=access.project)
        .select_related("zone__region", "image", "source_instance", "source_volume", "copied_from__zone")
    )
    instance_id = request.GET.get("instance", "")
    if instance_id:
        rows = rows.filter(source_instance_id=instance_id if _is_uuid(instance_id) else None)
    rows = _with_prices(list(rows.order_by("-created_at")[:200]))
    volumes = [
        (v, snapshot_price_monthly(v.size_gib), capability_refusal(v.zone, Capability.VOLUME_SNAPSHOTS))
        for v in Volume.objects.filter(
            project=access.project, status__in=["available", "in_use"]
        ).select_related("zone")
    ]
    context = _base(access) | {
        "snapshots": rows,
        "volumes": volumes,
        "errors": list(errors),
        "polling": any(s.is_transitional for s in rows),
    }
    if request.htmx:
        response = render(request, "compute/snapshots.html#snapshot-table", context)
        return response if context["polling"] else _stop(response)
    return render(request, "compute/snapshots.html", context, status=status)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _stop(response: HttpResponse) -> HttpResponse:
    stopped = HttpResponseStopPolling(response.content)
    stopped["Content-Type"] = response["Content-Type"]
    return stopped


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def snapshots(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    """The project's snapshots and backups; POST takes one of a server (`instance`) or a volume."""
    if request.method != "POST":
        return _snapshots_page(request, project_access(request.user, org_slug, project_slug))
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_CREATE)
    source = {}
    if (instance_id := request.POST.get("instance", "")) and _is_uuid(instance_id):
        source["instance"] = (
            Instance.objects.filter(project=access.project, pk=instance_id)
            .exclude(status=InstanceStatus.TERMINATED)
            .first()
        )
    elif (volume_id := request.POST.get("volume", "")) and _is_uuid(volume_id):
        source["volume"] = Volume.objects.existing().filter(project=access.project, pk=volume_id).first()
    if not source or None in source.values():
        return _snapshots_page(
            request, access, errors=["Choose a server or volume of this project."], status=400
        )
    try:
        op = snapshot_create(access=access, name=request.POST.get("name", ""), request=request, **source)
    except ComputeRefused as refused:
        return _snapshots_page(
            request, access, errors=[p.message for p in refused.problems], status=refused.status
        )
    except PlacementDenied as denied:
        return _snapshots_page(request, access, errors=[str(denied)], status=403)
    messages.success(request, f"Taking snapshot {op.snapshot.name}; it is billed once it is available.")
    if "instance" in source:
        return redirect(source["instance"].get_absolute_url() + "#snapshots")
    return redirect(reverse("compute:snapshots", args=[org_slug, project_slug]))


@login_required
@require_POST
def snapshot_remove(request: HttpRequest, org_slug: str, project_slug: str, snapshot_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    snapshot = Snapshot.objects.existing().filter(project=access.project, pk=snapshot_id).first()
    if snapshot is None:
        raise Http404("No such snapshot.")
    try:
        snapshot_delete(access=access, snapshot=snapshot, request=request)
    except ComputeRefused as refused:
        return _snapshots_page(
            request, access, errors=[p.message for p in refused.problems], status=refused.status
        )
    messages.success(request, f"Deleting {snapshot.name}.")
    return redirect(
        request.POST.get("next")
        if _safe_next(request)
        else reverse("compute:snapshots", args=[org_slug, project_slug])
    )


def _safe_next(request: HttpRequest) -> bool:
    target = request.POST.get("next", "")
    return target.startswith(f"/o/{request.resolver_match.kwargs['org_slug']}/") and "//" not in target


# --- the project's images ---------------------------------------------------------------------


def _images_page(request: HttpRequest, access: Access, *, errors=(), status: int = 200) -> HttpResponse:
    images = list(
        Image.objects.filter(project=access.project, is_active=True)
        .select_related("snapshot__zone__region", "snapshot__source_instance", "snapshot__copied_from__zone")
        .prefetch_related("zones__region")
        .order_by("name")
    )
    for image in images:
        image.refusal = " ".join(p.message for p in image_problems(image))
        snapshot = getattr(image, "snapshot", None)
        image.price_monthly = snapshot_price_monthly(snapshot.size_gib) if snapshot else None
        image.launch_zone = next(iter(image.zones.all()), None)
    context = _base(access) | {"images": images, "errors": list(errors)}
    return render(request, "compute/images.html", context, status=status)


@login_required
@require_http_methods(["GET", "HEAD"])
def images(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    return _images_page(request, project_access(request.user, org_slug, project_slug))


@login_required
@require_POST
def image_remove(request: HttpRequest, org_slug: str, project_slug: str, image_id: int) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    image = Image.objects.filter(project=access.project, pk=image_id, is_active=True).first()
    if image is None:
        raise Http404("No such image.")
    try:
        image_delete(access=access, image=image, request=request)
    except ComputeRefused as refused:
        return _images_page(
            request, access, errors=[p.message for p in refused.problems], status=refused.status
        )
    messages.success(request, f"Deleting image {image.name}.")
    return redirect(reverse("compute:images", args=[org_slug, project_slug]))


# --- a server's backups -----------------------------------------------------------------------


def _int(value: str) -> int | None:
    value = (value or "").strip()
    number = as_id(value.removeprefix("-"))
    return None if number is None else -number if value.startswith("-") else number


def schedule_values(schedule: BackupSchedule | None) -> dict:
    """What the schedule form shows: the schedule, or a daily one at 03:00 keeping 7."""
    return {
        "frequency": schedule.frequency if schedule else BackupFrequency.DAILY,
        "hour": schedule.hour if schedule else 3,
        "weekday": schedule.weekday if schedule else None,
        "keep": schedule.keep if schedule else 7,
        "enabled": schedule.enabled if schedule else True,
    }


def _backups_page(request, access, instance, *, values=None, errors=(), status=200) -> HttpResponse:
    context = (
        _base(access) | instance_storage(instance, access) | {"instance": instance, "errors": list(errors)}
    )
    if values is not None:
        context["values"] = values
    return render(request, "compute/instance_backups.html", context, status=status)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def instance_backups(request: HttpRequest, org_slug: str, project_slug: str, instance_id) -> HttpResponse:
    if request.method != "POST":
        access = project_access(request.user, org_slug, project_slug)
        return _backups_page(request, access, get_instance(access, instance_id))
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    instance = get_instance(access, instance_id)
    values = {
        "frequency": request.POST.get("frequency", ""),
        "hour": _int(request.POST.get("hour", "")),
        "weekday": _int(request.POST.get("weekday", "")),
        "keep": _int(request.POST.get("keep", "")),
        "enabled": request.POST.get("enabled") == "1",
    }
    try:
        schedule = backup_schedule_set(access=access, instance=instance, request=request, **values)
    except ComputeRefused as refused:
        errors = [p.message for p in refused.problems]
        return _backups_page(request, access, instance, values=values, errors=errors, status=refused.status)
    if schedule.enabled:
        messages.success(request, f"Backups of {instance.name}: {schedule.summary}.")
    else:
        messages.success(request, f"Backups of {instance.name} are off; the backups taken are kept.")
    return redirect(instance.get_absolute_url() + "#backups")
