"""One lifecycle, every backend: the simulated cloud, libvirt (a real VM under QEMU through the
embedded driver) and OpenStack (openstacksdk against a stateful fake of its APIs on 127.0.0.1).

Each backend fixture yields `(backend, zone_code)`. The scenarios only use the interface in
portal/compute/backends/base.py, and poll the way the portal's runner does (no backend waits).
"""

from __future__ import annotations

import time
import uuid

import pytest

from portal.compute.backends import BackendState, Capability, NotFound, Rejected, ServerSpec

pytestmark = pytest.mark.django_db(transaction=True)

B = BackendState
SETTLED = {B.RUNNING, B.STOPPED, B.ERROR}


def spec(zone: str, name: str = "contract-vm", flavor: str = "s-1vcpu-1gb", key: str | None = None):
    return ServerSpec(
        idempotency_key=key or str(uuid.uuid4()),
        name=name,
        zone=zone,
        flavor=flavor,
        vcpus=1,
        ram_gib=1,
        root_disk_gib=10,
        image="debian-12",
        ssh_keys=(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx0ctUYh4bn/lOm/GXl9lZtN0mRRlWwwQxGD1fWqWeP contract",
        ),
        user_data="#cloud-config\n",
    )


def settle(backend, backend_id: str, want: BackendState, timeout: float = 90) -> BackendState:
    """Poll like the runner until the server settles; fail if it settles elsewhere or never."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        state = backend.get_server(backend_id).state
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == want:
            return state
        if state in SETTLED and state != want and len(seen) > 1 and want not in SETTLED:
            break
        time.sleep(0.2)
    pytest.fail(f"{backend_id} did not reach {want} within {timeout} s; went through {seen}")


def test_lifecycle(cloud):
    backend, zone = cloud
    asked = spec(zone)
    created = backend.create_server(asked)
    assert created.backend_id
    settle(backend, created.backend_id, B.RUNNING)

    # Idempotent: a retried create (the worker died after the call) adopts the same server.
    again = backend.create_server(asked)
    assert again.backend_id == created.backend_id
    found = backend.find_server(zone, asked.idempotency_key)
    assert found is not None and found.backend_id == created.backend_id
    listed = {s.backend_id: s for s in backend.list_servers(zone)}
    assert created.backend_id in listed
    assert listed[created.backend_id].idempotency_key == asked.idempotency_key or (
        listed[created.backend_id].metadata.get("portal-instance-id") == asked.idempotency_key
    )

    backend.start_server(created.backend_id)  # already running: nothing happens
    assert backend.get_server(created.backend_id).state in (B.RUNNING, B.STARTING)

    backend.stop_server(created.backend_id)
    settle(backend, created.backend_id, B.STOPPED)
    backend.stop_server(created.backend_id)  # repeated: still stopped, no error
    backend.start_server(created.backend_id)
    settle(backend, created.backend_id, B.RUNNING)

    backend.reboot_server(created.backend_id)
    settle(backend, created.backend_id, B.RUNNING)

    with pytest.raises(Rejected):  # a running server is not resized: the customer is told to stop it
        backend.resize_server(created.backend_id, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)
    backend.stop_server(created.backend_id)
    settle(backend, created.backend_id, B.STOPPED)
    backend.resize_server(created.backend_id, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)
    settle(backend, created.backend_id, B.STOPPED)
    assert backend.get_server(created.backend_id).flavor == "s-2vcpu-2gb"
    backend.start_server(created.backend_id)
    settle(backend, created.backend_id, B.RUNNING)

    backend.delete_server(created.backend_id)
    deadline = time.monotonic() + 30
    while True:
        try:
            state = backend.get_server(created.backend_id).state
        except NotFound:
            break
        assert state == B.DELETING, state
        assert time.monotonic() < deadline, "still deleting after 30 s"
        time.sleep(0.2)
    backend.delete_server(created.backend_id)  # already gone: not an error
    assert backend.find_server(zone, asked.idempotency_key) is None
    assert created.backend_id not in {s.backend_id for s in backend.list_servers(zone)}


def test_unknown_server_is_not_found(cloud):
    backend, zone = cloud
    created = backend.create_server(spec(zone, name="probe"))
    # The same shape of id, pointing at nothing.
    tail = "1111" if created.backend_id.endswith("0000") else "0000"
    try:
        with pytest.raises(NotFound):
            backend.get_server(created.backend_id[:-4] + tail)
    finally:
        backend.delete_server(created.backend_id)


def test_capacity_and_health(cloud):
    backend, zone = cloud
    capacity = backend.zone_capacity(zone)
    assert capacity.free_vcpus >= 1 and capacity.free_ram_gib >= 1
    assert backend.check_health(zone)
    assert backend.capabilities(zone) <= set(Capability)
