from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRefresh, HttpResponseStopPolling

from portal.catalog.models import Flavor, Zone
from portal.compute import services
from portal.compute.backends import BackendError, Capability, NotFound, get_backend
from portal.compute.models import ACTIONS, Action, FirewallState, InstanceStatus
from portal.compute.models.instances import TRANSITIONAL
from portal.compute.pricing import monthly, price_per_hour
from portal.compute.selectors import instance_activity, instance_tombstone, instance_volumes
from portal.compute.snapshot_rules import capability_refusals
from portal.compute.views.common import get_instance
from portal.compute.views.firewall_card import firewall_context
from portal.compute.views.networks import instance_networks
from portal.compute.views.password_card import password_context
from portal.compute.views.snapshots import instance_storage
from portal.lib.ids import as_id
from portal.residency.placement import PlacementDenied
from portal.tenancy.access import Access, Perm, project_access

PAGE_SIZE = 50
PROGRESSIVE = {
    Action.START: "Starting",
    Action.STOP: "Stopping",
    Action.REBOOT: "Rebooting",
    Action.HARD_REBOOT: "Hard-rebooting",
    Action.RESIZE: "Resizing",
    Action.TERMINATE: "Terminating",
    Action.RESCUE: "Booting the rescue system for",
    Action.UNRESCUE: "Leaving rescue mode: booting its own disk for",
}


class InstanceFilter(forms.Form):
    q = forms.CharField(required=False, max_length=63, label="Name")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *InstanceStatus.choices])
    zone = forms.ModelChoiceField(
        Zone.objects.filter(region__is_active=True), required=False, empty_label="Any zone"
    )


def _listing(request: HttpRequest, access: Access):
    form = InstanceFilter(request.GET or None)
    instances = access.project.instances.visible().for_list()
    if form.is_valid():
        if form.cleaned_data["q"]:
            instances = instances.filter(name__icontains=form.cleaned_data["q"])
        if form.cleaned_data["status"]:
            instances = instances.filter(status=form.cleaned_data["status"])
        if form.cleaned_data["zone"]:
            instances = instances.filter(zone=form.cleaned_data["zone"])
    # get_page: a page number that is not one ('x', '²', 5,000 digits) is the first page, one past
    # the end (an old link, a negative one) the last.
    page = Paginator(instances, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return form, page, query.urlencode()


@login_required
@require_safe
def instance_list(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    form, page, query = _listing(request, access)
    rows = list(page.object_list)
    polling = any(i.status in TRANSITIONAL for i in rows)
    context = {
        "access": access,
        "org": access.organization,
        "project": access.project,
        "form": form,
        "page": page,
        "rows": rows,
        "query": query,
        "polling": polling,
        "can_launch": access.can(Perm.RESOURCE_CREATE),
    }
    if request.htmx:
        response = render(request, "compute/instance_list.html#instance-table", context)
        # Every row settled: htmx swaps this last version in and stops asking.
        return response if polling else _stop_polling(response)
    return render(request, "compute/instance_list.html", context)


def _stop_polling(response: HttpResponse) -> HttpResponse:
    stopped = HttpResponseStopPolling(response.content)
    for header, value in response.items():
        stopped[header] = value
    return stopped


@login_required
@require_safe
def instance_detail(request: HttpRequest, org_slug: str, project_slug: str, instance_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    instance = get_instance(access, instance_id, terminated=True)
    if instance.status == InstanceStatus.TERMINATED:
        if request.htmx:  # terminated while its page was open: reload it as the record below
            return HttpResponseClientRefresh()
        return render(
            request,
            "compute/instance_terminated.html",
            {
                "org": access.organization,
                "project": access.project,
                "record": instance_tombstone(instance),
                "currency": settings.PORTAL_CURRENCY,
            },
        )
    if request.htmx:
        context = _detail_context(access, instance)
        response = render(request, "compute/instance_detail.html#instance-live", context)
        return response if context["polling"] else _stop_polling(response)
    return detail_page(request, access, instance)


# The tail the customer sees: enough for a boot and a login prompt, small enough for a page.
CONSOLE_TAIL_CHARS = 16_000
# The server page follows the console while the server changes and for this long after it comes
# up (a kernel and cloud-init go on printing after the cloud calls the server running).
CONSOLE_FOLLOW = timedelta(seconds=60)


def _console_settled(instance) -> bool:
    """Nothing more worth asking for every few seconds: the page's console stops following."""
    if instance.is_transitional:
        return False
    booted = instance.running_since
    return booted is None or timezone.now() - booted > CONSOLE_FOLLOW


@login_required
@require_safe
def instance_console(request: HttpRequest, org_slug: str, project_slug: str, instance_id) -> HttpResponse:
    """The tail of the server's serial console, as its cloud reports it (loaded on demand)."""
    access = project_access(request.user, org_slug, project_slug)
    instance = get_instance(access, instance_id)
    context = {"org": access.organization, "project": access.project, "instance": instance, "text": ""}
    status = 200
    if not instance.backend_id or instance.status == InstanceStatus.TERMINATED:
        context["message"] = "This server has no console: it is not in the cloud (yet, or any more)."
    else:
        try:
            context["text"] = get_backend(instance.zone.backend).console_output(instance.backend_id)
        except NotFound:
            context["message"] = "The cloud no longer knows this server."
        except BackendError as error:
            context["message"], status = error.user_message, 503
        else:
            context["text"] = context["text"][-CONSOLE_TAIL_CHARS:]
            if not context["text"] and instance.is_transitional:
                context["message"] = (
                    f"Nothing printed yet: {instance.name} is {instance.get_status_display().lower()}. "
                    "What it prints as it boots appears here."
                )
            elif not context["text"]:
                context["message"] = (
                    "This server's cloud does not report console output (or nothing was printed yet)."
                )
    if not request.htmx:
        return render(request, "compute/instance_console.html", context, status=status)
    response = render(request, "compute/_console.html", context, status=status)
    # A busy cloud (503) is not swapped in and the page asks again; otherwise, once the server has
    # settled, this answer is the last the page's console asks for.
    return _stop_polling(response) if status == 200 and _console_settled(instance) else response


@dataclass(frozen=True)
class ResizeOption:
    """One size the server could take, beside the one it has: a row of the resize panel."""

    current: Flavor
    flavor: Flavor
    monthly_before: Decimal  # compute, licence and root disk, while it runs
    monthly_after: Decimal

    @property
    def smaller(self) -> bool:
        return is_downsize(self.current, self.flavor)

    @property
    def what_shrinks(self) -> str:
        return what_shrinks(self.current, self.flavor)


def resize_options(instance) -> list[ResizeOption]:
    def per_month(flavor: Flavor) -> Decimal:
        # The root disk stays as it is whatever the size (no backend shrinks it on a resize).
        return monthly(price_per_hour(flavor, instance.image, instance.root_disk_gib))

    sizes = Flavor.objects.filter(is_active=True, zones=instance.zone).exclude(pk=instance.flavor_id)
    before = per_month(instance.flavor)
    return [ResizeOption(instance.flavor, flavor, before, per_month(flavor)) for flavor in sizes]


def is_downsize(current: Flavor, new: Flavor) -> bool:
    """Fewer vCPUs or less RAM: programs that fitted may not any more, so the page asks twice."""
    return new.vcpus < current.vcpus or new.ram_gib < current.ram_gib


def what_shrinks(current: Flavor, new: Flavor) -> str:
    """“1 vCPU instead of 2 and 1 GiB RAM instead of 4”: only what gets smaller."""
    parts = [f"{new.vcpus} vCPU instead of {current.vcpus}"] if new.vcpus < current.vcpus else []
    if new.ram_gib < current.ram_gib:
        parts.append(f"{new.ram_gib} GiB RAM instead of {current.ram_gib}")
    return " and ".join(parts)


# What the server page may offer, asked of the zone's backend once per page (capability_refusals).
PAGE_CAPABILITIES = (
    Capability.SERVER_SNAPSHOTS,
    Capability.SERVER_REBUILD,
    Capability.FIREWALL,
    Capability.RESCUE,
    Capability.SERIAL_CONSOLE,
    Capability.GRAPHICAL_CONSOLE,
    Capability.PASSWORD_RESET,
    Capability.PRIVATE_NETWORKS,
)
CONSOLE_KINDS = (Capability.SERIAL_CONSOLE, Capability.GRAPHICAL_CONSOLE)


def _detail_context(
    access: Access, instance, confirm_resize: int | None = None, refusals: dict | None = None
) -> dict:
    """The live part of the server page; `refusals` is the zone's answer for PAGE_CAPABILITIES."""
    if refusals is None:
        refusals = capability_refusals(instance.zone, *PAGE_CAPABILITIES)
    volumes = instance_volumes(instance)
    return {
        "access": access,
        "org": access.organization,
        "project": access.project,
        "instance": instance,
        "operations": instance_activity(instance),
        "volumes": volumes,
        "can_operate": access.can(Perm.RESOURCE_OPERATE),
        "resize_options": resize_options(instance) if instance.allows(Action.RESIZE) else [],
        "confirm_resize": confirm_resize,
        "currency": settings.PORTAL_CURRENCY,
        # A launch volume waiting for the server keeps the page following it until it is attached.
        "polling": instance.is_transitional
        or instance.firewall_state == FirewallState.APPLYING
        or any(v.is_transitional or (v.pending_server_id and v.status == "available") for v in volumes),
        **_consoles(access, instance, refusals),
        **firewall_context(access, instance, refusals[Capability.FIREWALL]),
        "can_console": access.can(Perm.CONSOLE),
        **_rescue(access, instance, refusals[Capability.RESCUE]),
        **instance_networks(access, instance, refusals[Capability.PRIVATE_NETWORKS]),
    }


def _rescue(access: Access, instance, refusal: str) -> dict:
    """The rescue actions the page offers (`rescue_actions`), or why the zone has none (`refusal`)."""
    if not access.can(Perm.RESOURCE_OPERATE) or not (
        instance.allows(Action.RESCUE) or instance.allows(Action.UNRESCUE)
    ):
        return {"rescue_actions": [], "rescue_absent": ""}
    if refusal:
        return {"rescue_actions": [], "rescue_absent": refusal}
    return {
        "rescue_actions": [ACTIONS[a] for a in (Action.RESCUE, Action.UNRESCUE) if instance.allows(a)],
        "rescue_absent": "",
    }


def _consoles(access: Access, instance, refusals: dict) -> dict:
    """Which consoles the page offers this user (`consoles`: "serial_console", "graphical_console"),
    and, for a user who may connect to a zone that has none, the sentence that says so (or why the
    cloud could not be asked: the log below still shows what it printed)."""
    if not instance.backend_id or not access.can(Perm.CONSOLE):
        return {"consoles": set(), "console_absent": "", "graphical_relayed": False}
    kinds = {str(kind) for kind in CONSOLE_KINDS if not refusals[kind]}
    # A display the portal relays opens on a page of ours (noVNC); the cloud's own console, in a tab.
    relayed = (
        Capability.GRAPHICAL_CONSOLE in kinds and get_backend(instance.zone.backend).RELAYS_GRAPHICAL_CONSOLE
    )
    return {
        "consoles": kinds,
        "console_absent": "" if kinds else refusals[Capability.SERIAL_CONSOLE],
        "graphical_relayed": relayed,
    }


def detail_page(
    request: HttpRequest,
    access: Access,
    instance,
    status: int = 200,
    confirm_resize: int | None = None,
    extra: dict | None = None,
) -> HttpResponse:
    # Outside the live region (the 2 s poll does not read them): snapshots, backups, reverse DNS,
    # the root password card.
    refusals = capability_refusals(instance.zone, *PAGE_CAPABILITIES)
    context = (
        _detail_context(access, instance, confirm_resize, refusals)
        | instance_storage(instance, access, refusals)
        | password_context(access, instance, refusals[Capability.PASSWORD_RESET])
        | (extra or {})
    )
    return render(request, "compute/instance_detail.html", context, status=status)


@login_required
@require_POST
def instance_action(request: HttpRequest, org_slug: str, project_slug: str, instance_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    instance = get_instance(access, instance_id)
    action = request.POST.get("action", "")
    if action not in ACTIONS:
        return _refused(request, access, instance, "Choose one of the actions offered.", 400)
    flavor = None
    if action == Action.RESIZE:
        raw = request.POST.get("flavor", "")
        flavor = Flavor.objects.filter(pk=as_id(raw)).first() if as_id(raw) is not None else None
        if flavor is None:
            return _refused(request, access, instance, "Choose one of the sizes listed.", 400)
        confirmed = request.POST.get("confirm_downsize") == "1"
        if instance.allows(Action.RESIZE) and is_downsize(instance.flavor, flavor) and not confirmed:
            # A form without the second step (an old page, a hand-made request): nothing changes,
            # and the page opens that size's confirmation. (A state that allows no resize is the
            # service's refusal, with its own reason.)
            messages.error(
                request,
                f"{flavor.name} is smaller than {instance.flavor.name} "
                f"({what_shrinks(instance.flavor, flavor)}): confirm the smaller size below.",
            )
            return detail_page(request, access, instance, 400, confirm_resize=flavor.pk)
    try:
        services.instance_action(
            access=access,
            instance=instance,
            action=action,
            flavor=flavor,
            confirm_name=request.POST.get("confirm_name"),
            request=request,
        )
    except services.ComputeRefused as refused:
        return _refused(request, access, instance, refused.message, refused.status)
    except services.QuotaExceeded as error:
        return _refused(request, access, instance, str(error), 403)
    except PlacementDenied as denied:
        return _refused(request, access, instance, denied.decision.reason, 403)
    messages.success(request, f"{PROGRESSIVE[action]} {instance.name}. This page follows its progress.")
    if action == Action.TERMINATE:
        return redirect("compute:instance_list", org_slug=org_slug, project_slug=project_slug)
    return redirect(
        "compute:instance_detail", org_slug=org_slug, project_slug=project_slug, instance_id=instance.pk
    )


@login_required
@require_POST
def instance_protection(request: HttpRequest, org_slug: str, project_slug: str, instance_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    instance = get_instance(access, instance_id)
    protected = request.POST.get("protected") == "1"
    services.instance_set_protection(access=access, instance=instance, protected=protected, request=request)
    messages.success(request, "Termination protection is " + ("on." if protected else "off."))
    return redirect(
        "compute:instance_detail", org_slug=org_slug, project_slug=project_slug, instance_id=instance.pk
    )


@login_required
@require_POST
def instance_reverse_dns(request: HttpRequest, org_slug: str, project_slug: str, instance_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    instance = get_instance(access, instance_id)
    name = request.POST.get("reverse_dns", "")
    try:
        instance = services.instance_set_reverse_dns(
            access=access, instance=instance, name=name, request=request
        )
    except services.ComputeRefused as refused:
        errors = [problem.message for problem in refused.problems if problem.field]
        for problem in refused.problems:
            if not problem.field:
                messages.error(request, problem.message)
        context = {"reverse_dns_value": name, "reverse_dns_errors": errors}
        return detail_page(request, access, instance, refused.status, extra=context)
    messages.success(
        request,
        f"{instance.public_address} now points back to {instance.reverse_dns}."
        if instance.reverse_dns
        else "Reverse DNS removed.",
    )
    return redirect(
        "compute:instance_detail", org_slug=org_slug, project_slug=project_slug, instance_id=instance.pk
    )


def _refused(request: HttpRequest, access: Access, instance, message: str, status: int) -> HttpResponse:
    messages.error(request, message)
    return detail_page(request, access, instance, status)
