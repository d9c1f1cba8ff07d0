"""Building usage histories and moving the clock in statement and attestation tests."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from unittest import mock

from portal.metering.models import UsageSegment
from portal.tenancy.models import Organization


def make_segment(
    project,
    zone,
    *,
    start,
    end,
    meter="compute",
    quantity="1",
    price="0.0110",
    resource_id=None,
    resource_type="instance",
    name="server",
    vcpus=1,
    ram=2,
):
    return UsageSegment.objects.create(
        organization=project.organization,
        project=project,
        resource_type=resource_type,
        resource_id=resource_id or uuid.uuid4(),
        resource_name=name,
        zone=zone,
        meter=meter,
        quantity=Decimal(quantity),
        unit_price=Decimal(price),
        vcpus=vcpus,
        ram_gib=ram,
        started_at=start,
        ended_at=end,
    )


@contextmanager
def clock(moment: datetime):
    """Everything that asks django.utils.timezone.now() (auto_now_add included) gets `moment`."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def created_at(org: Organization, moment: datetime) -> Organization:
    Organization.objects.filter(pk=org.pk).update(created_at=moment)
    org.refresh_from_db()
    return org
