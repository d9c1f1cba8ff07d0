"""The launch wizard: one page, sections that validate as you go (htmx), a summary that always
shows what you will get and what it costs, and a plain form that works without JavaScript.

Every problem is shown at once: the form parses, the service's `launch_problems` judges whatever
parsed, and each message goes next to its field and into the list at the top of the page."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.audit.services import client_ip
from portal.budgets.guard import budget_guard
from portal.budgets.selectors import launch_budget_impact
from portal.catalog.models import Flavor, Image, OsFamily
from portal.compute import services
from portal.compute.forms import LaunchForm
from portal.compute.presets import Preset, presets_for
from portal.compute.pricing import default_disk_gib, launch_price, monthly, price_per_hour
from portal.compute.quota import project_usage
from portal.compute.services.networks import LaunchNetworks
from portal.compute.views.common import apply_problems, refusal_status
from portal.compute.views.launch_networks import launch_networks_context
from portal.compute.views.launch_volumes import launch_volumes_context
from portal.lib.ids import as_id
from portal.residency.picker import zone_picker
from portal.residency.placement import PlacementDenied, PlacementRules
from portal.tenancy.access import Access, Perm, project_access

# Names listed in the summary; a launch of more, or of longer names, says "name-1 … name-N".
SUMMARY_NAMES, SUMMARY_NAMES_LENGTH = 5, 80


@dataclass(frozen=True)
class QuotaImpact:
    label: str
    after: int
    limit: int
    unit: str = ""

    @property
    def over(self) -> bool:
        return self.after > self.limit


def _form(request: HttpRequest, access: Access, data=None, files=None) -> LaunchForm:
    project = access.project
    initial = {
        "name": f"{project.slug[:40]}-{secrets.token_hex(2)}",
        "count": 1,
        "zone": project.default_zone_id,
    }
    presets = presets_for(client_ip(request))
    # SSH from where the customer is now, as DigitalOcean and AWS suggest; "all inbound" asks twice.
    if "ssh-my-ip" in presets:
        initial["firewall"] = "preset:ssh-my-ip"
    # "Launch from this" on an image or snapshot: that image (of this project or the catalog),
    # in the zone that holds it.
    image_ref, zone_ref = request.GET.get("image", ""), request.GET.get("zone", "")
    image_id, zone_id = as_id(image_ref), as_id(zone_ref)
    if image_id is not None:
        image = Image.objects.for_project(project).filter(pk=image_id).first()
        if image is not None:
            initial["image"] = image.pk
            if zone_id is not None and image.zones.filter(pk=zone_id).exists():
                initial["zone"] = zone_id
    return LaunchForm(data, files, initial=initial, project=project, presets=presets)


def _value(form: LaunchForm, name: str):
    """The field's current value if it is usable: cleaned when valid, None when it has an error
    (a root disk of 10^30 GiB is reported, not priced), else looked up from the raw input."""
    if form.is_bound and name in form.errors:
        return None
    if form.is_bound and name in getattr(form, "cleaned_data", {}):
        return form.cleaned_data[name]
    field = form.fields[name]
    raw = form[name].value()
    if raw in (None, ""):
        return None
    try:
        return field.clean(raw)
    except ValidationError:  # not a usable value yet: the summary leaves it out
        return None


def _judge(project, form: LaunchForm) -> int:
    """Parse the form and apply every rule to what parsed, so all the problems show at once; the
    status to answer a refusal with (400 for bad input, 409 for a zone closed right now)."""
    parsed = form.is_valid()
    data = form.cleaned_data
    firewall = data.get("firewall")
    networks = data.get("networks") or LaunchNetworks()
    problems = services.launch_problems(
        project,
        name=data.get("name"),
        count=data.get("count"),
        zone=data.get("zone"),
        flavor=data.get("flavor"),
        image=data.get("image"),
        root_disk_gib=data.get("root_disk_gib"),
        user_data=data.get("user_data"),
        ssh_keys=tuple(data.get("ssh_keys") or ()),
        firewall=None if isinstance(firewall, Preset) else firewall,
        new_volumes=tuple(data.get("new_volumes") or ()),
        existing_volumes=tuple(data.get("existing_volumes") or ()),
        networks=networks.networks,
    ) + list(networks.problems)
    apply_problems(form, problems)
    if problems and parsed:
        return services.ComputeRefused.of(problems).status
    return 400


def _summary_names(name: str | None, count: int) -> str:
    if not name:
        return ""
    names = services.launch_names(name, count)
    listed = ", ".join(names)
    if count > SUMMARY_NAMES or len(listed) > SUMMARY_NAMES_LENGTH:
        return f"{names[0]} … {names[-1]}"
    return listed


def _extras(flavor, image, price) -> list[str]:
    """What the summary's price has on top of the size table's (the size with its included disk)."""
    if price is None:
        return []
    extras = []
    if price.disk_gib > flavor.root_disk_gib:
        extras.append(f"{price.disk_gib - flavor.root_disk_gib} GiB more root disk")
    if price.licence:
        extras.append(f"the {image.name} licence")
    return extras


def _blockers(quota: list[QuotaImpact], guard, zone, decision) -> list[str]:
    """Why the launch would be refused as it stands; the button is disabled while there is one.
    The server still checks all of it again when the form is posted."""
    reasons = []
    if zone is not None and decision is not None and not decision.allowed:
        reasons.append(decision.reason)
    elif zone is not None and not zone.accepts_launches:
        reasons.append(zone.refusal)
    over = [q.label for q in quota if q.over]
    if over:
        reasons.append(f"Over the project's quota ({', '.join(over)}): launch fewer or smaller servers.")
    if guard is not None and not guard.allowed:
        reasons.append(
            "Over the project's budget: only an owner may launch it."
            if guard.needs_approval
            else "Over the project's budget, and its guard blocks such launches."
        )
    return reasons


def _context(request: HttpRequest, access: Access, form: LaunchForm, shown_zone: str | None = None) -> dict:
    """What the wizard shows. `shown_zone` is the zone the page's image and size cards were drawn
    for (a check sends it); they are only read and drawn again for another zone."""
    project = access.project
    zone = _value(form, "zone")
    image = _value(form, "image")
    flavor = _value(form, "flavor")
    count = _value(form, "count") or 1
    if not 1 <= count <= settings.COMPUTE_MAX_LAUNCH_COUNT:
        count = 1
    disk = _value(form, "root_disk_gib")
    # Redrawn on every check, the cards were replaced under a click in progress: it was lost.
    redraw_sections = shown_zone != (str(zone.pk) if zone else "")
    flavors, images = [], []
    if redraw_sections:
        flavors = Flavor.objects.filter(is_active=True)
        images = Image.objects.for_project(project)
        if zone is not None:
            flavors = flavors.filter(zones=zone)
            images = images.filter(zones=zone)
    server_hourly = price_per_hour(flavor, image, disk)
    price = launch_price(flavor, image, disk) if flavor is not None else None
    name = _value(form, "name")
    server = services.launch_names(name, count)[0] if name else None
    volumes = launch_volumes_context(project, form, zone, count, redraw_sections, server)
    hourly = server_hourly * count + volumes["hourly"] if server_hourly is not None else None
    usage = project_usage(project)
    impact = []
    if flavor is not None:
        impact = [
            QuotaImpact("Instances", usage.instances + count, project.quota_instances),
            QuotaImpact("vCPUs", usage.vcpus + count * flavor.vcpus, project.quota_vcpus),
            QuotaImpact("RAM", usage.ram_gib + count * flavor.ram_gib, project.quota_ram_gib, " GiB"),
        ]
    if volumes["gib"]:
        impact.append(
            QuotaImpact("Volume storage", usage.volume_gib + volumes["gib"], project.quota_volume_gib, " GiB")
        )
    by_family, own = {}, []
    for img in images:
        if img.project_id:
            own.append(img)  # the project's snapshots and uploads, offered in the zones holding them
        else:
            by_family.setdefault(OsFamily(img.os_family).label, []).append(img)
    rules = PlacementRules.for_project(project)
    decision = rules.decide(zone) if zone is not None else None
    guard = budget_guard(project, hourly, request.user) if hourly is not None else None
    field_errors = [
        (form[name], error) for name, errors in form.errors.items() if name != "__all__" for error in errors
    ]
    return {
        "access": access,
        "org": access.organization,
        "project": project,
        "form": form,
        "field_errors": field_errors,
        "picker": zone_picker(rules=rules, selected_zone_id=zone.pk if zone else None, field_name="zone"),
        "redraw_sections": redraw_sections,
        "image_groups": ([("Your images", own)] if own else []) + sorted(by_family.items()),
        # What a size costs with its included disk, as the summary charges it.
        "flavors": [(f, launch_price(f).hourly, monthly(launch_price(f).hourly)) for f in flavors],
        "zone": zone,
        "image": image,
        "flavor": flavor,
        "count": count,
        "names": _summary_names(_value(form, "name"), count),
        "disk": price.disk_gib if price else (default_disk_gib(flavor, image) if flavor else None),
        # The size's price as the size table shows it, and what this launch adds to it.
        "size_monthly": monthly(launch_price(flavor).hourly) if flavor else None,
        "extras": _extras(flavor, image, price),
        "hourly": hourly,
        "monthly": monthly(hourly) if hourly is not None else None,
        "servers_monthly": monthly(server_hourly * count) if server_hourly is not None else None,
        "volumes": volumes,
        "networks": launch_networks_context(project, form, zone, redraw_sections),
        "impact": impact,
        "budget": launch_budget_impact(project, hourly) if hourly is not None else None,
        "guard": guard,
        "blockers": _blockers(impact, guard, zone, decision),
        "currency": settings.PORTAL_CURRENCY,
        "disk_price_month": f"{monthly(settings.PORTAL_DISK_PRICE_GIB_HOUR * 100)} {settings.PORTAL_CURRENCY} a month per 100 GiB",
        "max_count": settings.COMPUTE_MAX_LAUNCH_COUNT,
        "max_disk": services.ROOT_DISK_MAX_GIB,
        "user_data_limit_kib": settings.COMPUTE_USER_DATA_MAX_BYTES // 1024,
    }


def _launch_request(form: LaunchForm) -> services.LaunchRequest:
    data = form.cleaned_data
    flavor, image = data["flavor"], data["image"]
    firewall = data["firewall"]
    return services.LaunchRequest(
        name=data["name"],
        count=data["count"],
        zone=data["zone"],
        flavor=flavor,
        image=image,
        root_disk_gib=data["root_disk_gib"] or default_disk_gib(flavor, image),
        ssh_keys=tuple(data["ssh_keys"]),
        firewall=None if isinstance(firewall, Preset) else firewall,
        firewall_preset=firewall if isinstance(firewall, Preset) else None,
        user_data=data["user_data"],
        termination_protection=data["termination_protection"],
        new_keys=tuple(k for k in (data["new_ssh_key"], data["ssh_key_file"]) if k is not None),
        new_volumes=tuple(data["new_volumes"] or ()),
        existing_volumes=tuple(data["existing_volumes"] or ()),
        networks=data["networks"].networks,
    )


@login_required
@require_http_methods(["GET", "POST"])
def launch(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_CREATE)
    if request.method == "GET":
        return render(request, "compute/launch.html", _context(request, access, _form(request, access)))
    form = _form(request, access, request.POST, request.FILES)
    status = _judge(access.project, form)
    if not form.errors:
        try:
            batch = services.instance_launch(access=access, req=_launch_request(form), request=request)
        except services.ComputeRefused as refused:
            status = refusal_status(form, refused)
        except services.QuotaExceeded as error:
            form.add_error(None, str(error))
            status = 403
        except PlacementDenied as denied:
            form.add_error("zone", denied.decision.reason)
            status = 403
        else:
            if batch.budget_warning:
                messages.warning(request, batch.budget_warning)
            count = batch.instances.count()
            messages.success(
                request,
                f"Launching {count} server{'s' if count != 1 else ''}. You'll get an e-mail when "
                f"{'they are' if count != 1 else 'it is'} ready.",
            )
            return redirect("compute:instance_list", org_slug=org_slug, project_slug=project_slug)
    return render(request, "compute/launch.html", _context(request, access, form), status=status)


@login_required
@require_POST
def launch_check(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    """Validate the wizard as it is filled in; answer the summary and each section's messages."""
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_CREATE)
    data = request.POST
    if data.get("sections_zone", "") != data.get("zone", ""):
        # The networks ticked were the list of the zone the page showed; another zone's list
        # replaces it unticked, so they are neither judged nor summed up against the new zone.
        data = data.copy()
        data.setlist("networks", [])
    form = _form(request, access, data)
    _judge(access.project, form)
    # Only speak about what has been filled in: an untouched section is not an error yet.
    for name in list(form.errors):
        if (
            name != "__all__"
            and form[name].value() in (None, "", [])
            and not (name == "new_ssh_key" and form.private_key_pasted)
        ):
            del form.errors[name]
    context = _context(request, access, form, shown_zone=request.POST.get("sections_zone", ""))
    return render(request, "compute/launch_check.html", context)
