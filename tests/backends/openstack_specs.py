"""What the OpenStack tests ask for: a server spec, SSH keys and firewall rules, and polling as
the runner does. The fake cloud and its fixtures are in fake_openstack/ (the fixtures reach every
test here through conftest.py)."""

from __future__ import annotations

import time
import uuid

import pytest

from portal.compute.backends.base import BackendState, ServerSpec

B = BackendState
KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx0ctUYh4bn/lOm/GXl9lZtN0mRRlWwwQxGD1fWqWeP alice@laptop"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@desk"
SSH_FROM_OFFICE = {"protocol": "tcp", "port_from": 22, "port_to": 22, "source": "203.0.113.7/32"}
PING_V6 = {"protocol": "icmp", "port_from": None, "port_to": None, "source": "::/0"}


def spec(zone: str, **overrides) -> ServerSpec:
    values = {
        "idempotency_key": str(uuid.uuid4()),
        "name": "web-1",
        "zone": zone,
        "flavor": "s-1vcpu-1gb",
        "vcpus": 1,
        "ram_gib": 1,
        "root_disk_gib": 25,
        "image": "debian-12",
        "ssh_keys": (KEY_A,),
        "user_data": "#!/bin/sh\necho hello\n",
        "firewall_rules": (SSH_FROM_OFFICE,),
    }
    values.update(overrides)
    return ServerSpec(**values)


def settle(backend, backend_id: str, want: BackendState, timeout: float = 5) -> list[BackendState]:
    """Poll as the runner does until `want`; the states seen on the way."""
    seen: list[BackendState] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = backend.get_server(backend_id).state
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == want:
            return seen
        time.sleep(0.05)
    pytest.fail(f"never reached {want}: {seen}")


def nova_id(backend_id: str) -> str:
    return backend_id.partition(":")[2]
