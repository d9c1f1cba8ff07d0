from __future__ import annotations

import functools

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db.models import F, Func, IntegerField, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseStopPolling

from portal.catalog.models import Flavor, Zone
from portal.compute import services
from portal.compute.backends import BackendError, NotFound, get_backend
from portal.compute.models import ACTIONS, Action, InstanceStatus
from portal.compute.models.instances import TRANSITIONAL, with_absolute_urls
from portal.compute.views.common import checked_project_access, get_instance
from portal.core import fragments
from portal.core.fragments import CATALOG, servers_of
from portal.residency.placement import PlacementDenied
from portal.tenancy.access import Access, Perm

PAGE_SIZE = 50
# Page numbers above this (made-up links) go through Paginator, which clamps them to the last page
# before any OFFSET is sent: no database takes an OFFSET past 64 bits.
MAX_DIRECT_PAGE = 10_000
PROGRESSIVE = {
    Action.START: "Starting",
    Action.STOP: "Stopping",
    Action.REBOOT: "Rebooting",
    Action.HARD_REBOOT: "Hard-rebooting",
    Action.RESIZE: "Resizing",
    Action.TERMINATE: "Terminating",
}


class InstanceFilter(forms.Form):
    q = forms.CharField(required=False, max_length=63, label="Name")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *InstanceStatus.choices])
    zone = forms.ModelChoiceField(
        Zone.objects.filter(region__is_active=True), required=False, empty_label="Any zone"
    )

    def options(self, name: str) -> list[tuple[str, str, bool]]:
        """The choices of a select as (value, label, selected), selected as Django's Select marks
        it. The page writes its filter selects itself: the widget templates (one per <option>)
        cost milliseconds a page; the form still validates what comes back."""
        field = self.fields[name]
        if isinstance(field, forms.ModelChoiceField):
            # One plain query: the field's own iterator reads a handful of rows through a
            # server-side cursor, three round trips on PostgreSQL.
            choices = [("", field.empty_label)]
            choices += [(obj.pk, field.label_from_instance(obj)) for obj in field.queryset.all()]
        else:
            choices = field.choices
        current = self[name].value()
        current = "" if current is None else str(current)
        return [(str(value), label, str(value) == current) for value, label in choices]


def _listing(request: HttpRequest, access: Access):
    form = InstanceFilter(request.GET or None)
    instances = access.project.instances.visible().for_list_page()
    if form.is_valid():
        if form.cleaned_data["q"]:
            instances = instances.filter(name__icontains=form.cleaned_data["q"])
        if form.cleaned_data["status"]:
            instances = instances.filter(status=form.cleaned_data["status"])
        if form.cleaned_data["zone"]:
            instances = instances.filter(zone=form.cleaned_data["zone"])
    page = _page(instances, request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return form, page, query.urlencode()


def _page(instances: QuerySet, number) -> Page:
    """One page of `instances` and how many there are in all, in one query: the COUNT(*) rides
    along as an uncorrelated subquery (computed once) instead of a query of its own."""
    paginator = Paginator(instances, PAGE_SIZE)
    try:
        number = int(number or 1)
    except ValueError:
        number = 1
    if 1 <= number <= MAX_DIRECT_PAGE:
        # A Func, not Count: an aggregate would add a GROUP BY; this counts the filtered rows.
        total = (
            instances.order_by()
            .annotate(n=Func(F("pk"), function="COUNT", output_field=IntegerField()))
            .values("n")
        )
        start = (number - 1) * PAGE_SIZE
        rows = list(instances.annotate(list_total=Subquery(total))[start : start + PAGE_SIZE])
        if rows or number == 1:
            paginator.count = rows[0].list_total if rows else 0
            return Page(rows, number, paginator)
    # Past the last page (an old link) or out of range: Paginator's own answer, the last page.
    return paginator.get_page(number)


@login_required
@require_safe
def instance_list(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = checked_project_access(request, org_slug, project_slug)
    org, project = access.organization, access.project
    can_launch = access.can(Perm.RESOURCE_CREATE)
    template = "compute/_instance_list.html" + ("#instance-table" if request.htmx else "")
    # The content is the same for everyone who may see it alike: kept under the versions of the
    # project's servers and of the catalog, and of everything else it prints (the names and slugs
    # come fresh from the access check above).
    build = functools.partial(_list_content, request, access, template, can_launch)
    if not _worth_keeping(request):
        content, polling = build()
    else:
        content, polling = fragments.cached(
            "server-list",
            scopes=[servers_of(project.pk), CATALOG],
            parts=[
                template,
                request.get_full_path(),
                org.slug,
                org.name,
                project.slug,
                project.name,
                can_launch,
                timezone.get_current_timezone_name(),
            ],
            build=build,
        )
    if request.htmx:
        response = HttpResponse(content)
        # Every row settled: htmx swaps this last version in and stops asking.
        return response if polling else _stop_polling(response)
    return render(
        request, "compute/instance_list.html", {"access": access, "project": project, "content": content}
    )


# Kept: the list as people come back to it and as htmx polls it, up to this page. Free-text searches,
# made-up parameters and far pages are rendered each time: one-off pages would only fill the cache.
KEPT_PARAMETERS = {"status", "zone", "page"}
KEPT_PAGES = 20


def _worth_keeping(request: HttpRequest) -> bool:
    params = request.GET
    if not set(params) <= KEPT_PARAMETERS or any(len(values) > 1 for _, values in params.lists()):
        return False
    status, zone, page = params.get("status", ""), params.get("zone", ""), params.get("page", "1")
    # isascii(): "²".isdigit() is true, and int() refuses it.
    return (
        status in {"", *InstanceStatus.values}
        and (zone == "" or (zone.isascii() and zone.isdigit() and len(zone) <= 10))
        and page.isascii()
        and page.isdigit()
        and len(page) <= 2  # before int(): 4,300 digits are too many for it
        and int(page) <= KEPT_PAGES
    )


def _list_content(request: HttpRequest, access: Access, template: str, can_launch: bool) -> tuple[str, bool]:
    """The list's content and whether a row is still changing, from the request's path and query
    only: rendered without the request, so nothing else of it (or of the frame) can slip in."""
    form, page, query = _listing(request, access)
    rows = with_absolute_urls(list(page.object_list), access.project)
    polling = any(i.status in TRANSITIONAL for i in rows)
    context = {
        "org": access.organization,
        "project": access.project,
        "form": form,
        "page": page,
        "rows": rows,
        "query": query,
        "query_string": request.GET.urlencode(),
        "filtered": any(request.GET.get(name) for name in ("q", "status", "zone")),
        "path": request.path,
        "polling": polling,
        "can_launch": can_launch,
    }
    if not request.htmx:
        context["status_options"] = form.options("status")
        context["zone_options"] = form.options("zone")
    return render_to_string(template, context), polling


def _stop_polling(response: HttpResponse) -> HttpResponse:
    stopped = HttpResponseStopPolling(response.content)
    for header, value in response.items():
        stopped[header] = value
    return stopped


@login_required
@require_safe
def instance_detail(request: HttpRequest, org_slug: str, project_slug: str, instance_id) -> HttpResponse:
    access = checked_project_access(request, org_slug, project_slug)
    instance = get_instance(access, instance_id)
    if request.htmx:
        response = render(
            request, "compute/instance_detail.html#instance-live", _detail_context(access, instance)
        )
        return response if instance.is_transitional else _stop_polling(response)
    return _detail_page(request, access, instance)


# The tail the customer sees: enough for a boot and a login prompt, small enough for a page.
CONSOLE_TAIL_CHARS = 16_000


@login_required
@require_safe
def instance_console(request: HttpRequest, org_slug: str, project_slug: str, instance_id) -> HttpResponse:
    """The tail of the server's serial console, as its cloud reports it (loaded on demand)."""
    access = checked_project_access(request, org_slug, project_slug)
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
            if not context["text"]:
                context["message"] = (
                    "This server's cloud does not report console output (or nothing was printed yet)."
                )
    template = "compute/_console.html" if request.htmx else "compute/instance_console.html"
    return render(request, template, context, status=status)


def _detail_context(access: Access, instance) -> dict:
    return {
        "access": access,
        "org": access.organization,
        "project": access.project,
        "instance": instance,
        "operations": instance.operations.select_related("requested_by")[:20],
        "volumes": instance.volumes.all(),
        "can_operate": access.can(Perm.RESOURCE_OPERATE),
        "resize_flavors": Flavor.objects.filter(is_active=True, zones=instance.zone).exclude(
            pk=instance.flavor_id
        ),
        "polling": instance.is_transitional,
    }


def _detail_page(request: HttpRequest, access: Access, instance, status: int = 200) -> HttpResponse:
    return render(request, "compute/instance_detail.html", _detail_context(access, instance), status=status)


@login_required
@require_POST
def instance_action(request: HttpRequest, org_slug: str, project_slug: str, instance_id) -> HttpResponse:
    access = checked_project_access(request, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    instance = get_instance(access, instance_id)
    action = request.POST.get("action", "")
    if action not in ACTIONS:
        return _refused(request, access, instance, "Choose one of the actions offered.", 400)
    flavor = None
    if action == Action.RESIZE:
        raw = request.POST.get("flavor", "")
        flavor = Flavor.objects.filter(pk=raw).first() if raw.isascii() and raw.isdigit() else None
        if flavor is None:
            return _refused(request, access, instance, "Choose one of the sizes listed.", 400)
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
    access = checked_project_access(request, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    instance = get_instance(access, instance_id)
    protected = request.POST.get("protected") == "1"
    services.instance_set_protection(access=access, instance=instance, protected=protected, request=request)
    messages.success(request, "Termination protection is " + ("on." if protected else "off."))
    return redirect(
        "compute:instance_detail", org_slug=org_slug, project_slug=project_slug, instance_id=instance.pk
    )


def _refused(request: HttpRequest, access: Access, instance, message: str, status: int) -> HttpResponse:
    messages.error(request, message)
    return _detail_page(request, access, instance, status)
