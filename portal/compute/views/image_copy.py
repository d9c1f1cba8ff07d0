"""The "Copy to region…" page of a project's image (a server snapshot or a backup): the zones of
other regions it can go to, with the price of the copy, and those it can't, each with why (the
residency policy's reason first). POST asks `snapshot_copy`; a refusal re-renders the page with
every reason and the service's status."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from portal.catalog.models import Zone
from portal.compute.image_copy import copy_price_monthly, copy_targets, source_problems
from portal.compute.models import Snapshot
from portal.compute.services.common import ComputeRefused
from portal.compute.services.image_copy import snapshot_copy
from portal.residency.placement import PlacementDenied
from portal.tenancy.access import Access, Perm, project_access


def _page(request, access: Access, snapshot: Snapshot, *, chosen="", errors=(), status=200) -> HttpResponse:
    targets = copy_targets(snapshot, access.project)
    context = {
        "access": access,
        "org": access.organization,
        "project": access.project,
        "snapshot": snapshot,
        "currency": settings.PORTAL_CURRENCY,
        "price": copy_price_monthly(snapshot),
        "source_refusal": " ".join(p.message for p in source_problems(snapshot)),
        "allowed": [t for t in targets if t.allowed],
        "refused": _by_region([t for t in targets if not t.allowed]),
        "by_policy": any(t.by_policy for t in targets),
        "chosen": chosen,
        "name": request.POST.get("name", "") if request.method == "POST" else "",
        "errors": list(errors),
    }
    return render(request, "compute/snapshot_copy.html", context, status=status)


def _by_region(refused: list) -> list[dict]:
    """The zones not offered, one line per region and reason ("Zurich (zrh1-a, zrh1-b): …")."""
    lines: dict[tuple, dict] = {}
    for target in refused:
        key = (target.zone.region_id, target.refusal)
        line = lines.setdefault(
            key,
            {
                "region": target.zone.region.name,
                "zones": [],
                "reason": target.refusal,
                "by_policy": target.by_policy,
            },
        )
        line["zones"].append(target.zone.code)
    return list(lines.values())


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def snapshot_copy_page(request: HttpRequest, org_slug: str, project_slug: str, snapshot_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_CREATE)
    snapshot = (
        Snapshot.objects.existing()
        .filter(project=access.project, pk=snapshot_id)
        .select_related("zone__region", "image", "source_instance")
        .first()
    )
    if snapshot is None:
        raise Http404("No such snapshot.")
    if request.method != "POST":
        return _page(request, access, snapshot)
    code = request.POST.get("zone", "")
    zone = Zone.objects.select_related("region").filter(code=code).first() if code else None
    if zone is None:
        message = "Choose the zone to copy to." if not code else f"There is no zone {code}."
        return _page(request, access, snapshot, chosen=code, errors=[message], status=400)
    try:
        op = snapshot_copy(
            access=access, snapshot=snapshot, zone=zone, name=request.POST.get("name", ""), request=request
        )
    except ComputeRefused as refused:
        errors = [p.message for p in refused.problems]
        return _page(request, access, snapshot, chosen=code, errors=errors, status=refused.status)
    except PlacementDenied as denied:
        return _page(request, access, snapshot, chosen=code, errors=[str(denied)], status=403)
    messages.success(
        request,
        f"Copying {snapshot.name} to {zone.code} ({zone.region.name}) as {op.snapshot.name}; "
        "it is billed there once it is available.",
    )
    return redirect(
        reverse("compute:snapshots", args=[org_slug, project_slug]) + f"#snapshot-{op.snapshot_id}"
    )
