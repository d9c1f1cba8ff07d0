"""Handing out and taking back addresses. Nothing here knows about clouds: the compute app asks for
addresses when a zone's backend takes them from the portal (Capability.OPERATOR_ADDRESSES) and
returns them when its servers are gone."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.core.mail import mail_admins
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from portal.catalog.models import Zone
from portal.ipam import addresses
from portal.ipam.models import AddressAllocation, AddressPool, ExhaustionAlert, Family

log = logging.getLogger(__name__)
# A write that loses a race on the unique constraint (a path that did not take the pool's lock) is
# tried again with what is then taken.
ATTEMPTS = 5


class AddressesExhausted(Exception):
    """No pool of the zone has an address of this family left; the message is the customer's."""

    def __init__(self, zone: Zone, family: int) -> None:
        super().__init__(f"No addresses left in {zone.code}.")
        self.zone, self.family = zone, family


def zone_pool_families(zone: Zone) -> list[int]:
    """The families the zone has active pools of (IPv4 first): one query."""
    families = AddressPool.objects.filter(zone=zone, is_active=True).values_list("family", flat=True)
    return sorted(set(families))


def address_allocate(*, zone: Zone, family: int, instance, now: datetime | None = None) -> AddressAllocation:
    """The lowest free address of the zone's active pools of `family` for one server (the one it
    already holds, if any). Raises AddressesExhausted."""
    return addresses_allocate(zone=zone, family=family, instances=[instance], now=now)[0]


def addresses_allocate(
    *, zone: Zone, family: int, instances: Sequence, now: datetime | None = None
) -> list[AddressAllocation]:
    """An address of `family` for each server, lowest free first: not the network, broadcast or
    gateway address, not reserved, not held, not in quarantine. All or none: AddressesExhausted
    when the pools can't serve every one of them. A server that holds one keeps it (repeating a
    call changes nothing). [] when the zone has no active pool of the family.

    The pools' rows are locked until the caller's transaction ends, so concurrent launches take
    turns; the unique constraint is what guarantees it (a lost race is retried)."""
    for attempt in range(ATTEMPTS):
        try:
            with transaction.atomic():
                return _allocate(zone, family, instances, now)
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
            log.info("address race lost, retrying", extra={"zone": zone.code, "family": family})
    raise AssertionError("unreachable")


def _allocate(zone: Zone, family: int, instances: Sequence, now: datetime | None) -> list[AddressAllocation]:
    pools = list(
        AddressPool.objects.select_for_update()
        .filter(zone=zone, family=family, is_active=True)
        .order_by("pk")
    )
    if not pools:
        return []
    now = now or timezone.now()  # after the lock: what committed before us came first
    held = {
        allocation.instance_id: allocation
        for allocation in AddressAllocation.objects.live().filter(
            family=family, instance__in=[instance.pk for instance in instances]
        )
    }
    # Taken: held by a server, or returned and still resting.
    taken: dict[int, list[addresses.Range]] = {pool.pk: pool.never_handed_out() for pool in pools}
    busy = AddressAllocation.objects.filter(pool__in=pools).busy(now)
    for pool_id, address in busy.values_list("pool_id", "address"):
        taken[pool_id].append(addresses.as_range(address))
    made, result = [], []
    for instance in instances:
        if instance.pk in held:
            result.append(held[instance.pk])
            continue
        allocation = None
        for pool in pools:
            address = addresses.lowest_free(pool.network, taken[pool.pk])
            if address is None:
                continue
            taken[pool.pk].append(addresses.as_range(address))
            allocation = AddressAllocation(
                pool=pool,
                family=family,
                address=address,
                instance=instance,
                holder_name=instance.name,
                allocated_at=now,
            )
            break
        if allocation is None:
            raise AddressesExhausted(zone, family)
        made.append(allocation)
        result.append(allocation)
    AddressAllocation.objects.bulk_create(made)
    return result


def address_release(*, instance_ids: Iterable, now: datetime | None = None) -> int:
    """The servers' addresses go back to their pools, each to rest for its pool's quarantine first.
    Repeating it changes nothing. How many were released."""
    now = now or timezone.now()
    ids = list(instance_ids)
    if not ids:
        return 0
    live = AddressAllocation.objects.live().filter(instance__in=ids)
    released = 0
    for minutes in set(live.values_list("pool__quarantine_minutes", flat=True)):
        released += live.filter(pool__quarantine_minutes=minutes).update(
            released_at=now, quarantined_until=now + timedelta(minutes=minutes)
        )
    return released


def exhaustion_alert_raise(*, zone: Zone, family: int, now: datetime | None = None) -> ExhaustionAlert:
    """Tell the operators that a launch was refused for want of addresses: the open alert of the
    zone and family counts one more refusal, or a new one is opened and mailed to ADMINS (after
    commit). Called outside the refused launch's transaction, which is rolled back."""
    now = now or timezone.now()
    open_alerts = ExhaustionAlert.objects.filter(zone=zone, family=family, resolved_at=None)
    for _ in range(2):
        if open_alerts.update(last_at=now, refusals=F("refusals") + 1):
            return open_alerts.get()
        try:
            with transaction.atomic():
                alert = ExhaustionAlert.objects.create(zone=zone, family=family, first_at=now, last_at=now)
        except IntegrityError:
            continue  # opened by a concurrent refusal: count on it
        label = Family(family).label
        subject = f"No {label} addresses left in {zone.code}"
        body = (
            f"A launch in {zone.code} was refused: every active {label} pool of the zone is used "
            "up or resting in quarantine. Add or widen a pool in admin (Address pools), or shorten "
            "the quarantine."
        )
        transaction.on_commit(functools.partial(mail_admins, subject, body, fail_silently=True))
        return alert
    return open_alerts.get()
