"""A catalog zone served by the OpenStack backend on the fake cloud, through `get_backend` as in
production, and a server launched there by the portal's own pipeline: for tests of the portal's
paths (the serial console's websocket, the browser) rather than of the backend's calls."""

from __future__ import annotations

import pytest

from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.backends import get_backend
from portal.compute.models import Instance, Operation
from tests.backends.fake_openstack import PASSWORD, PROJECT, REGION, USERNAME, ZONE_CODE, backend_options
from tests.steps import drive

# What an operator would set on the zone in admin (Zone.backend_settings).
ZONE_SETTINGS = {"region": REGION, "availability_zone": "nova", "network": "public", "serial_console": True}


@pytest.fixture
def openstack_zone(catalog, fake_openstack, settings, monkeypatch) -> Zone:
    """Zone `osl1-a` on the fake cloud with a serial console. Also sets the environment a second
    process (uvicorn, a worker) reads settings.COMPUTE_BACKENDS["openstack"] from: request this
    fixture before theirs."""
    for name, value in {
        "OPENSTACK_AUTH_URL": fake_openstack.auth_url,
        "OPENSTACK_USERNAME": USERNAME,
        "OPENSTACK_PROJECT_NAME": PROJECT,
        "OPENSTACK_PASSWORD": PASSWORD,
    }.items():
        monkeypatch.setenv(name, value)
    options = backend_options(fake_openstack, zones={}, password_env="OPENSTACK_PASSWORD")
    settings.COMPUTE_BACKENDS = settings.COMPUTE_BACKENDS | {
        "openstack": {"CLASS": "portal.compute.backends.openstack.OpenStackBackend", "OPTIONS": options}
    }
    get_backend.cache_clear()
    zone = Zone.objects.create(
        region=catalog["fra1-a"].region,
        code=ZONE_CODE,
        backend="openstack",
        backend_settings=ZONE_SETTINGS,
        free_vcpus=16,
        free_ram_gib=32,
    )
    image, _ = Image.objects.get_or_create(
        name="Debian 12", defaults={"os_family": "debian", "min_disk_gib": 2}
    )
    Flavor.objects.get(code="s-1vcpu-1gb").zones.add(zone)
    image.zones.add(zone)
    yield zone
    get_backend("openstack").close()
    get_backend.cache_clear()


def openstack_server(access, zone: Zone, name: str) -> Instance:
    """A server launched in `zone` through the service and driven by the runner until it runs."""
    batch = services.instance_launch(
        access=access,
        req=services.LaunchRequest(
            name=name,
            count=1,
            zone=zone,
            flavor=Flavor.objects.get(code="s-1vcpu-1gb"),
            image=Image.objects.get(name="Debian 12"),
            root_disk_gib=25,
        ),
    )
    create = Operation.objects.get(instance__batch=batch)
    drive(create, limit=400, pause=0.1)
    create.refresh_from_db()
    assert create.state == "succeeded", (create.error_message, create.error_detail)
    return Instance.objects.get(batch=batch)
