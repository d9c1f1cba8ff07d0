"""Reads about servers that combine several models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Q
from django.utils import timezone

from portal.compute.models import Action, Instance, Operation, OperationState, Volume
from portal.metering.models import Meter
from portal.metering.selectors import cost_by_resource

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Tombstone:
    """What a terminated server was, who ended it, and what it cost over its whole life."""

    instance: Instance
    termination: Operation | None  # None for servers terminated before operations were kept
    terminated_at: datetime | None
    addresses: list[str]  # as they were when termination was asked (released since)
    lifetime: timedelta | None  # from its creation to its termination
    running_hours: Decimal  # billed compute hours: the time it ran
    cost: Decimal
    cost_by_meter: dict[str, Decimal] = field(default_factory=dict)


def instance_tombstone(instance: Instance, now: datetime | None = None) -> Tombstone:
    """A terminated server's record, from its termination operation and its usage segments (the
    same segments its bills were made of, so the total is what it was charged)."""
    now = now or timezone.now()
    termination = (
        instance.operations.filter(action=Action.TERMINATE, state=OperationState.SUCCEEDED)
        .select_related("requested_by")
        .order_by("-created_at")
        .first()
    )
    ended = instance.terminated_at or (termination.finished_at if termination else None)
    cost, hours, by_meter = Decimal(0), Decimal(0), {}
    for row in cost_by_resource(
        start=instance.created_at, end=ended or now, now=now, resource_id=instance.pk
    ):
        cost += row["cost"]
        hours += row["hours"]
        for meter, amount in row["by_meter"].items():
            by_meter[meter] = by_meter.get(meter, Decimal(0)) + amount
    return Tombstone(
        instance=instance,
        termination=termination,
        terminated_at=ended,
        addresses=list(termination.params.get("addresses", [])) if termination else [],
        lifetime=ended - instance.created_at if ended else None,
        running_hours=hours.quantize(Decimal("0.1"), ROUND_HALF_UP),
        cost=cost.quantize(CENT, ROUND_HALF_UP),
        cost_by_meter={
            Meter(meter).label: amount.quantize(CENT, ROUND_HALF_UP) for meter, amount in by_meter.items()
        },
    )


def instance_volumes(instance) -> list:
    """The server's volumes: attached (or being attached, detached), and those chosen at its launch
    that wait for it or failed on the way (their status says which)."""
    return list(
        Volume.objects.existing()
        .filter(Q(attached_to=instance) | Q(pending_server=instance))
        .select_related("project__organization")
        .order_by("name")
    )


def instance_activity(instance, limit: int = 20) -> list:
    """The server's operations and those of volumes for it (created with its launch, attached to
    or detached from it), newest first: a volume that failed on the way shows here."""
    server = str(instance.pk)
    return list(
        Operation.objects.filter(
            Q(instance=instance)
            | Q(volume__isnull=False, params__instance_id=server)
            | Q(volume__isnull=False, params__launch_server=server)
        )
        .select_related("requested_by", "volume")
        .order_by("-created_at")[:limit]
    )
