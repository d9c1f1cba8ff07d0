"""Backend fixtures, each yielding `(backend, zone_code)`: the contract suite runs on all of them."""

import pytest

from tests.backends.fake_openstack import fake_openstack, openstack_backend  # noqa: F401
from tests.backends.libvirt_env import libvirt_backend  # noqa: F401


@pytest.fixture
def simulated_backend(catalog):
    from portal.compute.backends.simulated import SimulatedBackend
    from portal.compute.models import SimulatedKnobs

    SimulatedKnobs.objects.create(boot_seconds=0.3, action_seconds=0.2, transient_error_rate=0)
    return SimulatedBackend("simulated"), "fra1-a"


BACKENDS = ["simulated_backend", "libvirt_backend", "openstack_backend"]


@pytest.fixture(params=BACKENDS)
def cloud(request):
    return request.getfixturevalue(request.param)
