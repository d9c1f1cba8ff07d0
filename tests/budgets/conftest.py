"""Usage histories written as segments at fixed times, so budgets can be checked at any `now`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from portal.budgets.models import Budget, GuardMode
from portal.metering.models import Meter, ResourceType, UsageSegment
from portal.metering.rollup import rollup_until

MARCH = datetime(2031, 3, 1, tzinfo=UTC)


def at(day: int, hour: int = 0, month: int = 3) -> datetime:
    return datetime(2031, month, day, hour, tzinfo=UTC)


@pytest.fixture
def segment(project, catalog):
    """segment(price_per_hour, start, end=None): one billable thing costing that much an hour."""
    zone = catalog["fra1-a"]

    def make(price, start: datetime, end: datetime | None = None, quantity=1, name="web-1") -> UsageSegment:
        return UsageSegment.objects.create(
            organization=project.organization,
            project=project,
            resource_type=ResourceType.INSTANCE,
            resource_id=uuid.uuid4(),
            resource_name=name,
            zone=zone,
            meter=Meter.COMPUTE,
            quantity=Decimal(quantity),
            unit_price=Decimal(price),
            started_at=start,
            ended_at=end,
        )

    return make


@pytest.fixture
def budget(project):
    def make(amount="100.00", guard=GuardMode.OFF) -> Budget:
        found, _ = Budget.objects.update_or_create(
            project=project, defaults={"amount": Decimal(amount), "guard": guard}
        )
        return found

    return make


def rolled(now: datetime) -> datetime:
    """Bring the metering rollups up to `now` (as the metering beat task would), return `now`."""
    rollup_until(now)
    return now


@pytest.fixture
def running(launch):
    """running(name=…, …): launch through the service and drive the simulated cloud to running."""
    from portal.compute.models import Instance, Operation
    from tests.steps import drive

    def make(**kwargs) -> list:
        batch = launch(**kwargs)
        drive(*Operation.objects.filter(instance__batch=batch))
        return list(Instance.objects.filter(batch=batch).select_related("flavor", "image", "project"))

    return make
