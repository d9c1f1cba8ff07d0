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


@pytest.fixture
def simulated_pair(simulated_backend):
    backend, zone = simulated_backend
    return backend, zone, "ams1-a"


@pytest.fixture
def libvirt_pair(db, request):
    """Two zones of one libvirt host, each with its own snapshot store (the second's under the
    first's root), for copies between them."""
    from portal.compute.backends.libvirt import LibvirtBackend
    from tests.backends.libvirt_env import backend_options, session_guest, session_root

    root = session_root(request)
    first, second = request.getfixturevalue("libvirt_backend")[1], "lv-copy-target"
    options = backend_options(root, session_guest(), first)
    options["zones"][second] = dict(options["zones"][first], snapshot_store=str(root / "snapshots-copy"))
    return LibvirtBackend("libvirt-test", **options), first, second


@pytest.fixture
def openstack_pair(request):
    from tests.backends.fake_openstack import ZONE_TWO

    backend, zone = request.getfixturevalue("openstack_backend")
    return backend, zone, ZONE_TWO


@pytest.fixture(params=["simulated_pair", "libvirt_pair", "openstack_pair"])
def cloud_pair(request):
    """`(backend, zone, other_zone)`: two zones of one cloud (in two regions where it has them)."""
    return request.getfixturevalue(request.param)
