"""The portal's own path, on every backend: a launch through the service, then stop, resize, start
and terminate through `instance_action`, each operation driven by the runner as the worker's
messages drive it. One pipeline for the simulated cloud, libvirt (a real VM under QEMU) and
OpenStack (openstacksdk against the fake of its APIs): the test_contract.py scenarios check the
backends' calls, this one that the pipeline reaches each of them the same way."""

from __future__ import annotations

from decimal import Decimal

import pytest

from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.backends import get_backend
from portal.compute.models import Instance, Operation, SimulatedKnobs
from portal.metering.models import UsageSegment
from tests.steps import drive

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def simulated_backend(catalog):
    SimulatedKnobs.objects.create(boot_seconds=0.3, action_seconds=0.2, transient_error_rate=0)
    return get_backend("simulated"), "fra1-a"


@pytest.fixture(params=["simulated_backend", "libvirt_backend", "openstack_backend"])
def zone(request, catalog, settings):
    """A catalog zone served by the backend under test, through `get_backend` as in production."""
    backend, code = request.getfixturevalue(request.param)
    backend_class = type(backend)
    settings.COMPUTE_BACKENDS = settings.COMPUTE_BACKENDS | {
        backend.name: {
            "CLASS": f"{backend_class.__module__}.{backend_class.__qualname__}",
            "OPTIONS": backend.options,
        }
    }
    get_backend.cache_clear()
    zone = Zone.objects.filter(code=code).first() or Zone.objects.create(
        region=catalog["fra1-a"].region, code=code, backend=backend.name, free_vcpus=16, free_ram_gib=32
    )
    small = Flavor.objects.get(code="s-1vcpu-1gb")
    big, _ = Flavor.objects.get_or_create(
        code="s-2vcpu-2gb",
        defaults={
            "name": "Contract 2",
            "vcpus": 2,
            "ram_gib": 2,
            "root_disk_gib": 25,
            "price_hourly": Decimal("0.01"),
        },
    )
    image, _ = Image.objects.get_or_create(
        name="Debian 12", defaults={"os_family": "debian", "min_disk_gib": 2}
    )
    small.zones.add(zone)
    big.zones.add(zone)
    image.zones.add(zone)
    yield zone
    get_backend.cache_clear()


def _act(access, instance, action, **extra) -> Operation:
    operation = services.instance_action(access=access, instance=instance, action=action, **extra)
    drive(operation, limit=400, pause=0.3)
    operation.refresh_from_db()
    assert operation.state == "succeeded", (action, operation.error_message, operation.error_detail)
    instance.refresh_from_db()
    return operation


def test_a_server_through_its_life_by_the_portals_pipeline(zone, access, django_capture_on_commit_callbacks):
    batch = services.instance_launch(
        access=access,
        req=services.LaunchRequest(
            name="pipe",
            count=1,
            zone=zone,
            flavor=Flavor.objects.get(code="s-1vcpu-1gb"),
            image=Image.objects.get(name="Debian 12"),
            root_disk_gib=25,
        ),
    )
    create = Operation.objects.get(instance__batch=batch)
    drive(create, limit=400, pause=0.3)
    create.refresh_from_db()
    instance = Instance.objects.get(batch=batch)
    assert create.state == "succeeded", (create.error_message, create.error_detail)
    assert instance.status == "running" and instance.backend_id and instance.running_since

    _act(access, instance, "stop")
    assert instance.status == "stopped"
    _act(access, instance, "resize", flavor=Flavor.objects.get(code="s-2vcpu-2gb"))
    assert instance.status == "stopped" and instance.flavor.code == "s-2vcpu-2gb"
    _act(access, instance, "start")
    assert instance.status == "running"
    _act(access, instance, "terminate", confirm_name=instance.name)
    assert instance.status == "terminated" and instance.terminated_at

    assert not get_backend(zone.backend).find_server(zone.code, str(instance.pk))
    assert not UsageSegment.objects.filter(resource_id=instance.pk, ended_at__isnull=True).exists()
