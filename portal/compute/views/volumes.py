"""Volumes: list and create in an allowed zone, attach to a server in the same zone, detach, delete."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.validators import RegexValidator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.catalog.models import Zone
from portal.compute.models import Instance, InstanceStatus, Volume
from portal.compute.quota import QuotaExceeded, project_usage
from portal.compute.services import ComputeRefused
from portal.compute.services import volumes as volume_services
from portal.compute.views.common import refusal_status
from portal.residency.picker import zone_picker
from portal.residency.placement import PlacementDenied, PlacementRules
from portal.residency.services import record_placement_denied
from portal.tenancy.access import Access, Perm, project_access


class VolumeForm(forms.Form):
    name = forms.CharField(
        max_length=volume_services.VOLUME_NAME_MAX_LENGTH,
        validators=[RegexValidator(volume_services.VOLUME_NAME_RE, volume_services.VOLUME_NAME_RULE)],
        help_text="Lower-case letters, digits and hyphens.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "data-1"}),
    )
    size_gib = forms.IntegerField(
        label="Size (GiB)",
        min_value=volume_services.VOLUME_MIN_GIB,
        max_value=volume_services.VOLUME_MAX_GIB,
        initial=100,
    )
    # Every zone of an active region: the service decides (and audits) what the policy forbids.
    zone = forms.ModelChoiceField(
        Zone.objects.filter(region__is_active=True), error_messages={"required": "Choose a zone."}
    )


class AttachForm(forms.Form):
    instance = forms.ModelChoiceField(
        Instance.objects.none(),
        error_messages={
            "required": "Choose a server.",
            "invalid_choice": "Choose one of the servers listed.",
        },
    )

    def __init__(self, *args, project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["instance"].queryset = Instance.objects.filter(project=project).visible()


def _get_volume(access: Access, volume_id) -> Volume:
    volume = (
        Volume.objects.existing()
        .select_related("zone__region", "attached_to")
        .filter(project=access.project, pk=volume_id)
        .first()
    )
    if volume is None:
        raise Http404("No such volume.")
    return volume


def _zone_choices(access: Access, selected_id: int | None) -> tuple[list[dict], int, int]:
    """Zones a volume may go to now, grouped by jurisdiction; how many the policy forbids; how many
    it allows but are closed (maintenance, sold out)."""
    picker = zone_picker(rules=PlacementRules.for_project(access.project), selected_zone_id=selected_id)
    groups = []
    for group in picker.groups:
        options = [o for region in group.regions for o in region.options if o.selectable]
        if options:
            groups.append({"label": group.jurisdiction.name, "options": options})
    forbidden = sum(1 for o in picker.options if o.state == "forbidden")
    closed = sum(1 for o in picker.options if o.state == "unavailable")
    return groups, forbidden, closed


def _page(request: HttpRequest, access: Access, form: VolumeForm, status: int = 200) -> HttpResponse:
    project = access.project
    volumes = list(
        Volume.objects.existing().filter(project=project).select_related("zone__region", "attached_to")
    )
    attachable: dict[int, list[Instance]] = {}
    for instance in Instance.objects.filter(project=project, status__in=volume_services.ATTACHABLE).order_by(
        "name"
    ):
        attachable.setdefault(instance.zone_id, []).append(instance)
    for volume in volumes:
        volume.candidates = attachable.get(volume.zone_id, [])
    selected = form["zone"].value() if form.is_bound else project.default_zone_id
    try:
        selected_id = int(selected) if selected else None
    except (TypeError, ValueError):
        selected_id = None
    zone_groups, zones_forbidden, zones_closed = _zone_choices(access, selected_id)
    usage = project_usage(project)
    return render(
        request,
        "compute/volumes.html",
        {
            "access": access,
            "org": access.organization,
            "project": project,
            "volumes": volumes,
            "form": form,
            "zone_groups": zone_groups,
            "zones_forbidden": zones_forbidden,
            "zones_closed": zones_closed,
            "used_gib": usage.volume_gib,
            "quota_gib": project.quota_volume_gib,
            "left_gib": max(0, project.quota_volume_gib - usage.volume_gib),
            "can_create": access.can(Perm.RESOURCE_CREATE),
            "can_operate": access.can(Perm.RESOURCE_OPERATE),
            "terminated": InstanceStatus.TERMINATED,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def volumes(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    if request.method == "GET":
        return _page(request, access, VolumeForm())
    access.require(Perm.RESOURCE_CREATE)
    form = VolumeForm(request.POST)
    status = 400
    if not form.is_valid():
        raw = request.POST.get("zone", "")
        if "zone" in form.errors and raw:  # a value no list offered: a forged or stale request
            record_placement_denied(
                access=access,
                zone=None,
                attempted=f"create a volume in zone {raw[:40]!r}",
                reason="No such zone.",
                request=request,
            )
        return _page(request, access, form, status)
    data = form.cleaned_data
    try:
        volume = volume_services.volume_create(
            access=access, name=data["name"], zone=data["zone"], size_gib=data["size_gib"], request=request
        )
    except ComputeRefused as refused:
        status = refusal_status(form, refused)
    except QuotaExceeded as error:
        form.add_error("size_gib", str(error))
        status = 403
    except PlacementDenied as denied:
        form.add_error("zone", denied.decision.reason)
        status = 403
    else:
        messages.success(
            request, f"Volume {volume.name} ({volume.size_gib} GiB) created in {volume.zone.code}."
        )
        return redirect("compute:volumes", org_slug=org_slug, project_slug=project_slug)
    return _page(request, access, form, status)


def _refused(request: HttpRequest, access: Access, message: str, status: int) -> HttpResponse:
    messages.error(request, message)
    return _page(request, access, VolumeForm(), status)


@login_required
@require_POST
def volume_attach(request: HttpRequest, org_slug: str, project_slug: str, volume_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    volume = _get_volume(access, volume_id)
    form = AttachForm(request.POST, project=access.project)
    if not form.is_valid():
        return _refused(request, access, " ".join(form.errors["instance"]), 400)
    instance = form.cleaned_data["instance"]
    try:
        volume_services.volume_attach(access=access, volume=volume, instance=instance, request=request)
    except ComputeRefused as refused:
        return _refused(request, access, refused.message, refused.status)
    except PlacementDenied as denied:
        return _refused(request, access, denied.decision.reason, 403)
    messages.success(request, f"{volume.name} is attached to {instance.name}.")
    return redirect("compute:volumes", org_slug=org_slug, project_slug=project_slug)


@login_required
@require_POST
def volume_detach(request: HttpRequest, org_slug: str, project_slug: str, volume_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    volume = _get_volume(access, volume_id)
    try:
        volume_services.volume_detach(access=access, volume=volume, request=request)
    except ComputeRefused as refused:
        return _refused(request, access, refused.message, refused.status)
    messages.success(request, f"{volume.name} is detached.")
    return redirect("compute:volumes", org_slug=org_slug, project_slug=project_slug)


@login_required
@require_POST
def volume_delete(request: HttpRequest, org_slug: str, project_slug: str, volume_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    volume = _get_volume(access, volume_id)
    try:
        volume_services.volume_delete(access=access, volume=volume, request=request)
    except ComputeRefused as refused:
        return _refused(request, access, refused.message, refused.status)
    messages.success(request, f"Volume {volume.name} deleted.")
    return redirect("compute:volumes", org_slug=org_slug, project_slug=project_slug)
