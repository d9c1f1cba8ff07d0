"""Volumes: list and create in an allowed zone, a page per volume (live status, device, how to mount
it), attach to a server in the same zone, detach, extend, delete. Every change is an operation."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.validators import RegexValidator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_htmx.http import HttpResponseStopPolling

from portal.catalog.models import Zone
from portal.compute.backends import Capability
from portal.compute.models import VOLUME_TRANSITIONAL, Instance, InstanceStatus, Volume
from portal.compute.pricing import monthly
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


class ExtendForm(forms.Form):
    size_gib = forms.IntegerField(
        label="New size (GiB)",
        min_value=volume_services.VOLUME_MIN_GIB,
        max_value=volume_services.VOLUME_MAX_GIB,
        error_messages={"required": "Choose the new size."},
    )


def _get_volume(access: Access, volume_id) -> Volume:
    volume = (
        Volume.objects.existing()
        .select_related("zone__region", "attached_to")
        .filter(project=access.project, pk=volume_id)
        .first()
    )
    if volume is None:
        raise Http404("No such volume.")
    volume.project = access.project
    return volume


def _zone_choices(access: Access, selected_id: int | None) -> tuple[list[dict], int, int, list[str]]:
    """Zones a volume may go to now, grouped by jurisdiction; how many the policy forbids; how many
    it allows but are closed (maintenance, sold out); why the allowed zones left out cannot take
    volumes ("Volumes are not available in ams1-b.")."""
    picker = zone_picker(rules=PlacementRules.for_project(access.project), selected_zone_id=selected_id)
    groups, without = [], []
    for group in picker.groups:
        options = []
        for region in group.regions:
            for option in region.options:
                if not option.selectable:
                    continue
                if refusal := volume_services.zone_refusal(option.zone):
                    without.append(refusal)
                else:
                    options.append(option)
        if options:
            groups.append({"label": group.jurisdiction.name, "options": options})
    forbidden = sum(1 for o in picker.options if o.state == "forbidden")
    closed = sum(1 for o in picker.options if o.state == "unavailable")
    return groups, forbidden, closed, without


def _polled(request: HttpRequest, response: HttpResponse, polling: bool) -> HttpResponse:
    """An htmx poll's answer; once nothing changes any more, one that stops the polling."""
    if not request.htmx or polling:
        return response
    stopped = HttpResponseStopPolling(response.content)
    for header, value in response.items():
        stopped[header] = value
    return stopped


def _page(request: HttpRequest, access: Access, form: VolumeForm, status: int = 200) -> HttpResponse:
    project = access.project
    volumes = list(
        Volume.objects.existing()
        .filter(project=project)
        .select_related("zone__region", "attached_to", "project__organization")
    )
    selected = form["zone"].value() if form.is_bound else project.default_zone_id
    try:
        selected_id = int(selected) if selected else None
    except (TypeError, ValueError):
        selected_id = None
    zone_groups, zones_forbidden, zones_closed, zones_without = _zone_choices(access, selected_id)
    usage = project_usage(project)
    polling = any(v.status in VOLUME_TRANSITIONAL for v in volumes)
    context = {
        "access": access,
        "org": access.organization,
        "project": project,
        "volumes": volumes,
        "polling": polling,
        "form": form,
        "zone_groups": zone_groups,
        "zones_forbidden": zones_forbidden,
        "zones_closed": zones_closed,
        "zones_without": zones_without,
        "used_gib": usage.volume_gib,
        "quota_gib": project.quota_volume_gib,
        "left_gib": max(0, project.quota_volume_gib - usage.volume_gib),
        "can_create": access.can(Perm.RESOURCE_CREATE),
        "can_operate": access.can(Perm.RESOURCE_OPERATE),
        "gib_month": monthly(settings.PORTAL_VOLUME_PRICE_GIB_HOUR),
        "currency": settings.PORTAL_CURRENCY,
    } | _price_line(access, form["size_gib"].value())
    if request.htmx and request.method == "GET":
        return _polled(request, render(request, "compute/volumes.html#volume-table", context), polling)
    return render(request, "compute/volumes.html", context, status=status)


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
        op = volume_services.volume_create(
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
        volume = op.volume
        price = monthly(volume.size_gib * settings.PORTAL_VOLUME_PRICE_GIB_HOUR)
        messages.success(
            request,
            f"Creating {volume.name} ({volume.size_gib} GiB, {price} {settings.PORTAL_CURRENCY} a month) "
            f"in {volume.zone.code}: it is ready in a moment.",
        )
        return redirect("compute:volumes", org_slug=org_slug, project_slug=project_slug)
    return _page(request, access, form, status)


def _price_line(access: Access, size) -> dict:
    """What the new-volume form says a volume of `size` (as typed) costs a month; None when the
    size is not one a volume can have."""
    form = VolumeForm({"size_gib": size})
    form.is_valid()
    size_gib = None if "size_gib" in form.errors else form.cleaned_data["size_gib"]
    return {
        "org": access.organization,
        "project": access.project,
        "price_size_gib": size_gib,
        "price_month": None if size_gib is None else monthly(size_gib * settings.PORTAL_VOLUME_PRICE_GIB_HOUR),
        "max_gib": volume_services.VOLUME_MAX_GIB,
        "currency": settings.PORTAL_CURRENCY,
    }


@login_required
@require_safe
def volume_price(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    """The price line of the new-volume form for the size typed so far (it answers as the form's
    own check does, like the launch wizard's summary: a size out of range says so)."""
    access = project_access(request.user, org_slug, project_slug)
    context = _price_line(access, request.GET.get("size_gib", ""))
    return render(request, "compute/volumes.html#volume-price", context)


def extend_options(volume: Volume, left_gib: int) -> list[dict]:
    """A few larger sizes, each with what it adds per month, that fit the quota left."""
    sizes = sorted({volume.size_gib + 10, volume.size_gib * 2, volume.size_gib * 4})
    limit = min(volume_services.VOLUME_MAX_GIB, volume.size_gib + left_gib)
    return [
        {
            "size_gib": size,
            "delta": volume_services.extend_price_delta(volume, size),
            "monthly": monthly(size * settings.PORTAL_VOLUME_PRICE_GIB_HOUR),
        }
        for size in sizes
        if volume.size_gib < size <= limit
    ]


def _detail(request: HttpRequest, access: Access, volume: Volume, *, extend_form=None, status=200):
    project = access.project
    usage = project_usage(project)
    left = max(0, project.quota_volume_gib - usage.volume_gib)
    candidates = []
    if volume.status == "available":
        candidates = list(
            Instance.objects.filter(
                project=project, zone=volume.zone, status__in=volume_services.ATTACHABLE
            ).order_by("name")
        )
    context = {
        "access": access,
        "org": access.organization,
        "project": project,
        "volume": volume,
        "polling": volume.is_transitional,
        "operations": volume.operations.select_related("requested_by")[:20],
        "candidates": candidates,
        "zone_refusal": volume_services.zone_refusal(volume.zone),
        "extend_refusal": volume_services.zone_refusal(volume.zone, Capability.VOLUME_EXTEND),
        "extend_options": extend_options(volume, left),
        "extend_form": extend_form or ExtendForm(),
        "left_gib": left,
        "gib_month": monthly(settings.PORTAL_VOLUME_PRICE_GIB_HOUR),
        "month_now": monthly(volume.size_gib * settings.PORTAL_VOLUME_PRICE_GIB_HOUR),
        "currency": settings.PORTAL_CURRENCY,
        "can_operate": access.can(Perm.RESOURCE_OPERATE),
        "terminated": InstanceStatus.TERMINATED,
    }
    if request.htmx and request.method == "GET":
        response = render(request, "compute/volume_detail.html#volume-live", context)
        return _polled(request, response, volume.is_transitional)
    return render(request, "compute/volume_detail.html", context, status=status)


@login_required
@require_http_methods(["GET"])
def volume_detail(request: HttpRequest, org_slug: str, project_slug: str, volume_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    return _detail(request, access, _get_volume(access, volume_id))


def _refused(request: HttpRequest, access: Access, volume: Volume, message: str, status: int) -> HttpResponse:
    messages.error(request, message)
    volume = _get_volume(access, volume.pk)
    return _detail(request, access, volume, status=status)


def _all(refused: ComputeRefused) -> str:
    return " ".join(problem.message for problem in refused.problems)


def _to_detail(volume: Volume, org_slug: str, project_slug: str) -> HttpResponse:
    return redirect(
        "compute:volume_detail", org_slug=org_slug, project_slug=project_slug, volume_id=volume.pk
    )


@login_required
@require_POST
def volume_attach(request: HttpRequest, org_slug: str, project_slug: str, volume_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    volume = _get_volume(access, volume_id)
    form = AttachForm(request.POST, project=access.project)
    if not form.is_valid():
        return _refused(request, access, volume, " ".join(form.errors["instance"]), 400)
    instance = form.cleaned_data["instance"]
    try:
        volume_services.volume_attach(access=access, volume=volume, instance=instance, request=request)
    except ComputeRefused as refused:
        return _refused(request, access, volume, _all(refused), refused.status)
    except PlacementDenied as denied:
        return _refused(request, access, volume, denied.decision.reason, 403)
    messages.success(request, f"Attaching {volume.name} to {instance.name}…")
    return _to_detail(volume, org_slug, project_slug)


@login_required
@require_POST
def volume_detach(request: HttpRequest, org_slug: str, project_slug: str, volume_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    volume = _get_volume(access, volume_id)
    try:
        volume_services.volume_detach(access=access, volume=volume, request=request)
    except ComputeRefused as refused:
        return _refused(request, access, volume, _all(refused), refused.status)
    messages.success(request, f"Detaching {volume.name}…")
    return _to_detail(volume, org_slug, project_slug)


@login_required
@require_POST
def volume_extend(request: HttpRequest, org_slug: str, project_slug: str, volume_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    volume = _get_volume(access, volume_id)
    form = ExtendForm(request.POST)
    if not form.is_valid():
        return _detail(request, access, volume, extend_form=form, status=400)
    size = form.cleaned_data["size_gib"]
    try:
        volume_services.volume_extend(access=access, volume=volume, size_gib=size, request=request)
    except ComputeRefused as refused:
        return _detail(request, access, volume, extend_form=form, status=refusal_status(form, refused))
    except QuotaExceeded as error:
        form.add_error("size_gib", str(error))
        return _detail(request, access, volume, extend_form=form, status=403)
    messages.success(request, f"Extending {volume.name} to {size} GiB…")
    return _to_detail(volume, org_slug, project_slug)


@login_required
@require_POST
def volume_delete(request: HttpRequest, org_slug: str, project_slug: str, volume_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    volume = _get_volume(access, volume_id)
    try:
        volume_services.volume_delete(access=access, volume=volume, request=request)
    except ComputeRefused as refused:
        return _refused(request, access, volume, _all(refused), refused.status)
    messages.success(request, f"Deleting {volume.name}…")
    return redirect("compute:volumes", org_slug=org_slug, project_slug=project_slug)
