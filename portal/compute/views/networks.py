"""Private networks: list and create in an allowed zone, a page per network (its servers and their
addresses), servers attached and detached from the network's page or the server's. Every change is
an operation; networks are free."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from portal.catalog.models import Zone
from portal.compute.models import PORT_PRESENT, Instance, Network, NetworkStatus, PortStatus
from portal.compute.services import ComputeRefused, Problem
from portal.compute.services import networks as network_services
from portal.compute.services.volumes import VOLUME_NAME_MAX_LENGTH, VOLUME_NAME_RE, VOLUME_NAME_RULE
from portal.compute.views.common import refusal_status
from portal.compute.views.volumes import _polled
from portal.lib.ids import as_id
from portal.residency.picker import zone_picker
from portal.residency.placement import PlacementDenied, PlacementRules
from portal.tenancy.access import Access, Perm, project_access


class NetworkForm(forms.Form):
    name = forms.CharField(
        max_length=VOLUME_NAME_MAX_LENGTH,
        validators=[RegexValidator(VOLUME_NAME_RE, VOLUME_NAME_RULE)],
        help_text="Lower-case letters, digits and hyphens.",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "backend"}
        ),
    )
    # Checked by the service, so that every problem with the range is said at once.
    cidr = forms.CharField(
        label="Address range (CIDR)",
        max_length=64,
        initial="10.10.0.0/24",
        help_text="A private IPv4 range of /16 to /29, inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "inputmode": "decimal"}),
    )
    zone = forms.ModelChoiceField(
        Zone.objects.filter(region__is_active=True), error_messages={"required": "Choose a zone."}
    )


def _get_network(access: Access, network_id) -> Network:
    network = (
        Network.objects.existing()
        .select_related("zone__region")
        .filter(project=access.project, pk=network_id)
        .first()
    )
    if network is None:
        raise Http404("No such network.")
    network.project = access.project
    return network


def _zone_choices(access: Access) -> tuple[list, list[str]]:
    """Zones a network may go to now, and why allowed zones left out have none."""
    picker = zone_picker(rules=PlacementRules.for_project(access.project), selected_zone_id=None)
    options, without = [], []
    for option in picker.options:
        if not option.selectable:
            continue
        if refusal := network_services.network_refusal(option.zone):
            without.append(refusal)
        else:
            options.append(option.zone)
    return options, without


def _page(request: HttpRequest, access: Access, form: NetworkForm, status: int = 200) -> HttpResponse:
    project = access.project
    networks = list(
        Network.objects.existing()
        .filter(project=project)
        .select_related("zone__region", "project__organization")
    )
    counts = {}
    for network in networks:
        counts[network.pk] = network.ports.filter(status__in=PORT_PRESENT).count()
        network.server_count = counts[network.pk]
    zones, without = _zone_choices(access)
    polling = any(n.is_transitional for n in networks)
    context = {
        "access": access,
        "org": access.organization,
        "project": project,
        "networks": networks,
        "polling": polling,
        "form": form,
        "zones": zones,
        "zones_without": without,
        "can_create": access.can(Perm.RESOURCE_CREATE),
    }
    if request.htmx and request.method == "GET":
        return _polled(request, render(request, "compute/networks.html#network-table", context), polling)
    return render(request, "compute/networks.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def networks(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    if request.method == "GET":
        # The launch wizard's "create one" link names the zone it was launching in.
        return _page(request, access, NetworkForm(initial={"zone": as_id(request.GET.get("zone", ""))}))
    access.require(Perm.RESOURCE_CREATE)
    form = NetworkForm(request.POST)
    form.is_valid()
    data = form.cleaned_data
    zone = data.get("zone")
    try:
        if zone is None:  # the form says so; the range's problems are said with it
            raise ComputeRefused.of(
                network_services.cidr_problems(request.POST.get("cidr", ""))[1]
                or [Problem("zone", "Choose a zone.")]
            )
        op = network_services.network_create(
            access=access,
            name=request.POST.get("name", ""),
            zone=zone,
            cidr=request.POST.get("cidr", ""),
            request=request,
        )
    except ComputeRefused as refused:
        status = refusal_status(form, refused)
    except PlacementDenied as denied:
        form.add_error("zone", denied.decision.reason)
        status = 403
    else:
        network = op.network
        messages.success(
            request,
            f"Creating {network.name} ({network.cidr}) in {network.zone.code}: it is ready in a moment.",
        )
        return redirect("compute:networks", org_slug=org_slug, project_slug=project_slug)
    return _page(request, access, form, status)


def _detail_context(access: Access, network: Network) -> dict:
    ports = list(
        network.ports.filter(status__in=[*PORT_PRESENT, PortStatus.ERROR])
        .select_related("instance")
        .order_by("instance__name")
    )
    on = {p.instance_id for p in ports}
    candidates = (
        Instance.objects.filter(
            project=access.project, zone=network.zone, status__in=network_services.ATTACHABLE
        )
        .exclude(pk__in=on)
        .order_by("name")
    )
    return {
        "access": access,
        "org": access.organization,
        "project": access.project,
        "network": network,
        "ports": ports,
        "candidates": list(candidates) if network.status == NetworkStatus.AVAILABLE else [],
        "can_operate": access.can(Perm.RESOURCE_OPERATE),
        "polling": network.is_transitional
        or any(p.status in (PortStatus.ATTACHING, PortStatus.DETACHING) for p in ports),
        "refusal": network_services.network_refusal(network.zone),
    }


@login_required
@require_safe
def network_detail(request: HttpRequest, org_slug: str, project_slug: str, network_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    context = _detail_context(access, _get_network(access, network_id))
    if request.htmx:
        return _polled(
            request, render(request, "compute/network_detail.html#network-live", context), context["polling"]
        )
    return render(request, "compute/network_detail.html", context)


def _back(request: HttpRequest, network: Network) -> HttpResponse:
    """To the page the button was on (the server's or the network's)."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(network.get_absolute_url())


def _instance(access: Access, raw: str) -> Instance:
    instance = (
        Instance.objects.filter(project=access.project).visible().filter(pk=raw).first() if raw else None
    )
    if instance is None:
        raise ComputeRefused("Choose one of the project's servers.", "instance")
    return instance


def _change(request: HttpRequest, org_slug: str, project_slug: str, network_id, change) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    access.require(Perm.RESOURCE_OPERATE)
    network = _get_network(access, network_id)
    try:
        done = change(access, network)
    except ComputeRefused as refused:
        for problem in refused.problems:
            messages.error(request, problem.message)
        return _back(request, network)
    except PlacementDenied as denied:
        messages.error(request, denied.decision.reason)
        return _back(request, network)
    messages.success(request, done)
    return _back(request, network)


@login_required
@require_POST
def network_attach(request: HttpRequest, org_slug: str, project_slug: str, network_id) -> HttpResponse:
    def change(access, network):
        instance = _instance(access, request.POST.get("instance", ""))
        network_services.network_attach(access=access, network=network, instance=instance, request=request)
        return f"{instance.name} is joining {network.name}: its address there shows in a moment."

    return _change(request, org_slug, project_slug, network_id, change)


@login_required
@require_POST
def network_join(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    """The server page's "Join a network": the network is chosen in the form (no script needed)."""
    access = project_access(request.user, org_slug, project_slug)
    access.require(Perm.RESOURCE_OPERATE)  # a viewer: 403, whatever the form holds
    try:
        network = _get_network(access, request.POST.get("network", ""))
    except (Http404, ValidationError):
        messages.error(request, "Choose one of the project's networks.")
        return _back_or_list(request, org_slug, project_slug)
    return network_attach(request, org_slug, project_slug, network.pk)


def _back_or_list(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("compute:networks", org_slug=org_slug, project_slug=project_slug)


@login_required
@require_POST
def network_detach(request: HttpRequest, org_slug: str, project_slug: str, network_id) -> HttpResponse:
    def change(access, network):
        instance = _instance(access, request.POST.get("instance", ""))
        network_services.network_detach(access=access, network=network, instance=instance, request=request)
        return f"{instance.name} is leaving {network.name}."

    return _change(request, org_slug, project_slug, network_id, change)


@login_required
@require_POST
def network_delete(request: HttpRequest, org_slug: str, project_slug: str, network_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    access.require(Perm.RESOURCE_OPERATE)
    network = _get_network(access, network_id)
    try:
        network_services.network_delete(access=access, network=network, request=request)
    except ComputeRefused as refused:
        messages.error(request, refused.message)
        return redirect(network.get_absolute_url())
    messages.success(request, f"Deleting {network.name}.")
    return redirect("compute:networks", org_slug=org_slug, project_slug=project_slug)


def instance_networks(access: Access, instance: Instance, refusal: str) -> dict:
    """The server page's part: the networks it is on (with its address in each), those of its zone
    it can join, or why its zone has none (`refusal`: the page's PAGE_CAPABILITIES answer)."""
    ports = list(
        instance.network_ports.filter(status__in=[*PORT_PRESENT, PortStatus.ERROR])
        .select_related("network")
        .order_by("network__name")
    )
    joinable = []
    if not refusal and instance.status in network_services.ATTACHABLE:
        joinable = list(
            Network.objects.filter(project=access.project, zone=instance.zone, status=NetworkStatus.AVAILABLE)
            .exclude(pk__in=[p.network_id for p in ports])
            .order_by("name")
        )
    return {
        "network_ports": ports,
        "joinable_networks": joinable,
        "networks_absent": refusal,
    }
