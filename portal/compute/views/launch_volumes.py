"""The launch wizard's volumes: what the Volumes part of its Storage section and its summary show.
The rules are the service's (compute/services/launch_volumes.py); this only reads and prices."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError

from portal.compute.models import Volume, VolumeStatus
from portal.compute.pricing import monthly
from portal.compute.services.launch_volumes import (
    launch_volume_name,
    launch_volumes_gib,
    launch_volumes_hourly,
)
from portal.compute.services.volumes import VOLUME_MAX_GIB, VOLUME_MIN_GIB, volumes_per_server, zone_refusal


def as_uuid(text) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(text))
    except ValueError:
        return None


def _new_volumes(form) -> list:
    """The new volumes that can be priced: parsed, with a size in bounds (the others are errors)."""
    field = form.fields["new_volumes"]
    try:
        rows = field.clean(form["new_volumes"].value())
    except ValidationError:  # some size is no number: price the rows that are
        rows = []
        for name, size in form["new_volumes"].value():
            try:
                rows += field.clean([(name, size)])
            except ValidationError:
                continue
    return [row for row in rows if VOLUME_MIN_GIB <= row.size_gib <= VOLUME_MAX_GIB]


def launch_volumes_context(project, form, zone, count: int, redraw: bool, server: str | None) -> dict:
    refusal = zone_refusal(zone) if zone is not None else ""
    new = [] if refusal else _new_volumes(form)
    chosen_ids = [pk for pk in (as_uuid(v) for v in form["existing_volumes"].value() or []) if pk]
    chosen = (
        list(Volume.objects.existing().filter(project=project, pk__in=chosen_ids).order_by("name"))
        if chosen_ids and not refusal
        else []
    )
    choices = []
    if redraw and zone is not None and not refusal:
        choices = list(
            Volume.objects.existing()
            .filter(
                project=project,
                zone=zone,
                status=VolumeStatus.AVAILABLE,
                attached_to=None,
                pending_server=None,
            )
            .order_by("name")
        )
    # Worded as the new-volume form and the root disk's help word it: per 100 GiB.
    per_100_gib = monthly(settings.PORTAL_VOLUME_PRICE_GIB_HOUR * 100)
    hourly = launch_volumes_hourly(new, count)
    return {
        "refusal": refusal,
        # The rows as typed, and one more to fill in (the page's button adds others).
        "rows": [*(form["new_volumes"].value() or []), ("", "")],
        # Named as they will be: after the one server, or "data" for each of several.
        "new": [
            (
                launch_volume_name(server, v) if count == 1 and server else v.name,
                v,
                monthly(v.size_gib * settings.PORTAL_VOLUME_PRICE_GIB_HOUR),
            )
            for v in new
        ],
        "chosen": chosen,
        "chosen_ids": {str(pk) for pk in chosen_ids},
        "choices": choices,
        "hourly": hourly,
        "example": f"{server or 'web'}-{new[0].name if new else 'data'}",
        "monthly": monthly(hourly) if hourly else Decimal(0),
        "gib": launch_volumes_gib(new, count),
        "per_100_gib": per_100_gib,
        "min_gib": VOLUME_MIN_GIB,
        "max_gib": VOLUME_MAX_GIB,
        "per_server": volumes_per_server(),
    }
