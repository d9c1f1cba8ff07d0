"""The server page's console buttons: a one-time ticket for the serial console's websocket (and
the graphical console's, where the portal relays the server's display) and/or the address of the
cloud's own console, as JSON for static/js/console.js; the graphical console's page, noVNC on that
websocket (static/js/graphical-console.js); and the root password reset, whose answer is the page
with the new password, once."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from portal.compute.backends import BackendError, Capability, Transient, get_backend, not_available
from portal.compute.services import passwords
from portal.compute.services.common import ComputeRefused
from portal.compute.services.consoles import CONSOLE_STATUSES, console_capabilities, console_grant
from portal.compute.views.common import get_instance
from portal.compute.views.instances import detail_page
from portal.tenancy.access import Perm, project_access


def websocket_url(request: HttpRequest, path: str) -> str:
    return f"{'wss' if request.is_secure() else 'ws'}://{request.get_host()}{path}"


@login_required
@require_POST
def instance_console_open(
    request: HttpRequest, org_slug: str, project_slug: str, instance_id
) -> JsonResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.CONSOLE)
    instance = get_instance(access, instance_id)
    try:
        grant = console_grant(access=access, instance=instance, request=request)
    except ComputeRefused as refused:
        return JsonResponse({"error": refused.message}, status=refused.status)
    except BackendError as error:
        return JsonResponse(
            {"error": error.user_message}, status=503 if isinstance(error, Transient) else 409
        )
    return JsonResponse(
        {
            "websocket_url": websocket_url(request, grant.websocket_path) if grant.websocket_path else "",
            "graphical_websocket_url": websocket_url(request, grant.graphical_websocket_path)
            if grant.graphical_websocket_path
            else "",
            "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
            "console_url": grant.remote.url if grant.remote else "",
            "console_protocol": grant.remote.protocol if grant.remote else "",
        }
    )


@never_cache
@login_required
@require_POST
def instance_password_reset(
    request: HttpRequest, org_slug: str, project_slug: str, instance_id
) -> HttpResponse:
    """Rendered, not redirected: the new password is in this one answer and nowhere else (no
    message in the session, no-store for the browser's cache)."""
    access = project_access(request.user, org_slug, project_slug, Perm.CONSOLE)
    instance = get_instance(access, instance_id)
    if request.POST.get("confirm") != "1":
        messages.error(request, "Confirm the reset: the current root password stops working.")
        return detail_page(request, access, instance, 400)
    try:
        reset = passwords.instance_password_reset(access=access, instance=instance, request=request)
    except ComputeRefused as refused:
        messages.error(request, refused.message)
        return detail_page(request, access, instance, refused.status)
    return detail_page(request, access, instance, extra={"new_password": reset.password})


def _graphical_refusal(instance) -> str:
    """Why the server's page can't show its display now ("" when it can), in plain words."""
    if instance.status not in CONSOLE_STATUSES:
        return (
            f"{instance.name} is {instance.get_status_display().lower()}: its screen is there while it runs."
        )
    try:
        kinds = console_capabilities(instance)
        relayed = get_backend(instance.zone.backend).RELAYS_GRAPHICAL_CONSOLE
    except BackendError as error:
        return error.user_message
    if Capability.GRAPHICAL_CONSOLE not in kinds or not relayed:
        return not_available(Capability.GRAPHICAL_CONSOLE, instance.zone.code).user_message
    return ""


@login_required
@require_safe
def instance_graphical_console(
    request: HttpRequest, org_slug: str, project_slug: str, instance_id
) -> HttpResponse:
    """The server's screen in the browser (noVNC), where the portal relays its display."""
    access = project_access(request.user, org_slug, project_slug, Perm.CONSOLE)
    instance = get_instance(access, instance_id)
    refusal = (
        _graphical_refusal(instance) if instance.backend_id else "This server is not in the cloud (yet)."
    )
    context = {
        "org": access.organization,
        "project": access.project,
        "instance": instance,
        "refusal": refusal,
    }
    return render(request, "compute/instance_graphical_console.html", context, status=409 if refusal else 200)
