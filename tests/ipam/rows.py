"""One row of every ipam model, for tests that open every admin page (tests/core/test_admin.py)."""

from __future__ import annotations

from django.utils import timezone

from portal.catalog.models import Zone
from portal.ipam.models import AddressAllocation, AddressPool, ExhaustionAlert


def ipam_admin_rows(project) -> None:
    from tests.factories import InstanceFactory

    now = timezone.now()
    zone = Zone.objects.get(code="fra1-a")
    pool = AddressPool.objects.create(zone=zone, family=4, cidr="203.0.113.0/24", gateway="203.0.113.1")
    instance = InstanceFactory(project=project, name="addressed")
    AddressAllocation.objects.create(
        pool=pool,
        family=4,
        address="203.0.113.2",
        instance=instance,
        holder_name="addressed",
        allocated_at=now,
    )
    ExhaustionAlert.objects.create(zone=zone, family=6, first_at=now, last_at=now)
