"""The server page's console button: a one-time ticket for the serial console's websocket and/or
the address of the cloud's own console, as JSON for static/js/console.js."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from portal.compute.backends import BackendError, Transient
from portal.compute.services.common import ComputeRefused
from portal.compute.services.consoles import console_grant
from portal.compute.views.common import get_instance
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
