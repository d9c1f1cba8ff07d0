"""Segments open and close with every transition, at the price of the moment."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from portal.catalog.models import Flavor
from portal.compute import services
from portal.compute.models import Instance, Operation
from portal.metering.models import UsageSegment
from portal.metering.segments import reprice
from tests.steps import drive


def _drive(op):
    drive(op)


def _open(instance):
    return {
        (s.meter, s.quantity, s.unit_price)
        for s in UsageSegment.objects.filter(resource_id=instance.pk, ended_at__isnull=True)
    }


def _launch_running(launch, **kwargs):
    batch = launch(**kwargs)
    _drive(Operation.objects.get(instance__batch=batch))
    return Instance.objects.select_related("flavor", "image", "project").get(batch=batch)


def test_a_running_server_pays_compute_and_disk_a_stopped_one_only_disk(launch, access):
    instance = _launch_running(launch)
    assert _open(instance) == {("compute", 1, Decimal("0.011")), ("disk", 50, Decimal("0.000137"))}
    _drive(services.instance_action(access=access, instance=instance, action="stop"))
    assert _open(instance) == {("disk", 50, Decimal("0.000137"))}
    compute = UsageSegment.objects.get(resource_id=instance.pk, meter="compute")
    assert compute.ended_at is not None
    _drive(services.instance_action(access=access, instance=instance, action="start"))
    assert UsageSegment.objects.filter(resource_id=instance.pk, meter="compute").count() == 2


def test_windows_pays_its_licence_while_running(launch):
    instance = _launch_running(launch, image="Windows Server 2025", root_disk_gib=60)
    assert ("license", 1, Decimal("0.048")) in _open(instance)


def test_resize_closes_one_compute_segment_and_opens_another(launch, access):
    instance = _launch_running(launch)
    _drive(services.instance_action(access=access, instance=instance, action="stop"))
    bigger = Flavor.objects.get(code="s-2vcpu-4gb")
    _drive(services.instance_action(access=access, instance=instance, action="resize", flavor=bigger))
    _drive(services.instance_action(access=access, instance=instance, action="start"))
    compute = list(
        UsageSegment.objects.filter(resource_id=instance.pk, meter="compute").order_by("started_at")
    )
    assert [(s.unit_price, s.vcpus) for s in compute] == [(Decimal("0.011"), 1), (Decimal("0.022"), 2)]
    assert compute[0].ended_at is not None and compute[1].ended_at is None


def test_terminate_closes_everything(launch, access):
    instance = _launch_running(launch)
    _drive(
        services.instance_action(
            access=access, instance=instance, action="terminate", confirm_name=instance.name
        )
    )
    assert _open(instance) == set()
    assert UsageSegment.objects.filter(resource_id=instance.pk).count() == 2


def test_a_failed_launch_is_never_billed(launch):
    batch = launch(name="fail-me")
    _drive(Operation.objects.get(instance__batch=batch))
    assert Instance.objects.get(batch=batch).status == "error"
    assert not UsageSegment.objects.exists()


def test_a_price_change_mid_month_bills_both_prices(launch):
    instance = _launch_running(launch)
    flavor = instance.flavor
    change = timezone.now() + timedelta(hours=10)
    flavor.price_hourly = Decimal("0.0200")
    flavor.save()
    assert reprice(flavor=flavor, at=change) == 1
    compute = list(
        UsageSegment.objects.filter(resource_id=instance.pk, meter="compute").order_by("started_at")
    )
    assert [s.unit_price for s in compute] == [Decimal("0.011"), Decimal("0.02")]
    assert compute[0].ended_at == change == compute[1].started_at
    # The disk's price did not change: its segment runs on untouched.
    assert UsageSegment.objects.filter(resource_id=instance.pk, meter="disk").count() == 1


def test_sync_twice_changes_nothing(launch):
    from portal.metering.segments import sync_instance

    instance = _launch_running(launch)
    before = list(UsageSegment.objects.values_list("pk", "ended_at"))
    sync_instance(instance)
    sync_instance(instance)
    assert list(UsageSegment.objects.values_list("pk", "ended_at")) == before
