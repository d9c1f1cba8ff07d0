"""Backend fixtures, each yielding `(backend, zone_code)`: the contract suite runs on all of them."""

from tests.backends.fake_openstack import fake_openstack, openstack_backend  # noqa: F401
from tests.backends.libvirt_env import libvirt_backend  # noqa: F401
