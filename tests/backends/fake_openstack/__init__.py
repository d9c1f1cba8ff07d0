"""A small, stateful OpenStack cloud served over real HTTP on 127.0.0.1, for the OpenStack backend.

It speaks just enough Keystone v3 (`identity.py`), Nova v2.1 (`compute.py`), Glance v2
(`image.py`), Neutron v2.0 (`network.py`) and Cinder v3 (`volume.py`) for openstacksdk to discover
the services, sign in and drive servers through their life, and storage: Cinder's volumes and
snapshots (`volume.py`), Nova's volume attachments and `createImage` (`compute_storage.py`), the
snapshot images in Glance. `server.py` is the plumbing: the HTTP
server, the router and the knobs that inject faults: `fail_next(n)` answers the next n requests
with a 503 from the "load balancer", `stall_next(n, s)` holds them for s seconds, `revoke_tokens()`
makes every issued token invalid (as a Keystone restart with new fernet keys would), `frozen()`
holds every transition, `remove_route(method, pattern)` takes a call away (the service answers its
own 404, as a cloud without that API or extension does).

Other ways a cloud differs, set on its services: `cloud.identity.catalog_urls` (a wrong endpoint in
the catalog), `cloud.image.ignores_filters` (a list that ignores `name=`), `cloud.network.extensions`
(Neutron without `security-group`), `cloud.volume.availability_zones` and `cloud.volume.quota_gigabytes`,
`cloud.compute.storage.cross_az_attach`. A cloud without a service (no Cinder):
`@pytest.mark.parametrize("fake_openstack", [{"without": ["volume"]}], indirect=True)`.

Two regions: RegionOne (zone `osl1-a`) and RegionTwo (`ZONE_TWO`, `osl2-a`), each with a Nova and a
Glance of its own (`cloud.compute2`, `cloud.image2`), for copies of images between regions; Neutron
and Cinder answer both regions from one state (no test moves networks or volumes between them).

Each service keeps its own state and is an attribute of the cloud: `cloud.compute.servers`,
`cloud.image.images`, `cloud.network.security_groups`, `cloud.volume.volumes`, `cloud.volume.snapshots`. Another service is a module with a
`Service` subclass, listed in `SERVICES` below; Keystone's catalog then lists it.

Fixtures: `fake_openstack` (a fresh cloud per test) and `openstack_backend`, which yields
`(backend, zone_code)` for an `OpenStackBackend` pointed at it (flavors `s-1vcpu-1gb` and
`s-2vcpu-2gb`, images `debian-12` and `Debian 12`, network `public`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backends.fake_openstack.compute import Compute, ComputeRegionTwo, Server, nova_error
from tests.backends.fake_openstack.identity import PASSWORD, PROJECT, REGION, REGION_TWO, USERNAME, Identity
from tests.backends.fake_openstack.image import Image, ImageRegionTwo
from tests.backends.fake_openstack.network import Network, neutron_error
from tests.backends.fake_openstack.server import WEB_SERVER_NOT_FOUND, FakeCloud, HttpError, Service
from tests.backends.fake_openstack.volume import Volume

__all__ = [
    "PASSWORD",
    "PROJECT",
    "REGION",
    "REGION_TWO",
    "SERVICES",
    "USERNAME",
    "WEB_SERVER_NOT_FOUND",
    "ZONE_CODE",
    "ZONE_TWO",
    "FakeCloud",
    "HttpError",
    "Server",
    "Service",
    "backend_options",
    "fake_openstack",
    "neutron_error",
    "nova_error",
    "openstack_backend",
]

ZONE_CODE = "osl1-a"
ZONE_TWO = "osl2-a"  # a zone in RegionTwo, for copies of images between regions
# The services the cloud answers, in the order Keystone's catalog lists them.
SERVICES = (Identity, Compute, ComputeRegionTwo, Image, ImageRegionTwo, Network, Volume)


@pytest.fixture
def fake_openstack(request) -> Iterator[FakeCloud]:
    without = set(getattr(request, "param", {}).get("without", ()))
    cloud = FakeCloud([service for service in SERVICES if service.name not in without]).start()
    yield cloud
    cloud.stop()


def backend_options(cloud: FakeCloud, **overrides) -> dict:
    """OPTIONS for an `OpenStackBackend` that signs in to `cloud` (the password from the environment)."""
    options = {
        "auth": {
            "auth_url": cloud.auth_url,
            "username": USERNAME,
            "project_name": PROJECT,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "password_env": "FAKE_OPENSTACK_PASSWORD",
        "timeout": 5,
        "zones": {
            ZONE_CODE: {"region": REGION, "availability_zone": "nova", "network": "public"},
            ZONE_TWO: {"region": REGION_TWO, "availability_zone": "nova", "network": "public"},
        },
    }
    options.update(overrides)
    return options


@pytest.fixture
def openstack_backend(db, fake_openstack, monkeypatch):
    """`(backend, zone_code)`: an `OpenStackBackend` for a fresh fake cloud (boot and actions ~0.2 s).

    Uses the database (the backend reads `Zone.backend_settings`); the zone needs no row there.
    """
    from portal.compute.backends.openstack import OpenStackBackend

    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    backend = OpenStackBackend("openstack", **backend_options(fake_openstack))
    yield backend, ZONE_CODE
    backend.close()
