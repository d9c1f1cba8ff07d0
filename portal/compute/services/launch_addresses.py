"""The addresses a launch takes from the operator's pools (portal/ipam), where the zone's cloud is
given them (Capability.OPERATOR_ADDRESSES); elsewhere the cloud picks, as before."""

from __future__ import annotations

from portal.catalog.models import Zone
from portal.compute.backends import BackendError, Capability, get_backend
from portal.ipam.services import addresses_allocate, zone_pool_families


def zone_takes_pool_addresses(zone: Zone) -> bool:
    try:
        return Capability.OPERATOR_ADDRESSES in get_backend(zone.backend).capabilities(zone.code)
    except BackendError:
        return False


def launch_addresses_allocate(*, zone: Zone, instances: list) -> None:
    """An IPv4 and (where the zone has an IPv6 pool) an IPv6 address for each new server, inside
    the launch's transaction: one query for a zone without pools. Raises AddressesExhausted, which
    refuses the whole launch."""
    families = zone_pool_families(zone)
    if not families or not zone_takes_pool_addresses(zone):
        return
    for family in families:
        addresses_allocate(zone=zone, family=family, instances=instances)
