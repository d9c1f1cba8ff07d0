"""Nova's server as the fake keeps it: its vm and task states (and the status Nova shows for them),
the error body Nova answers with, and the request's microversion. Shared by `compute.py` and
`compute_storage.py`."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.backends.fake_openstack.server import HttpError, now_iso

NOVA_MAX_MICROVERSION = "2.96"

# Nova's status for a (vm_state, task_state), as nova.api.openstack.common maps them.
_STATUS = {
    "building": {"default": "BUILD"},
    "active": {
        "default": "ACTIVE",
        "rebooting": "REBOOT",
        "reboot_started": "REBOOT",
        "rebooting_hard": "HARD_REBOOT",
        "reboot_started_hard": "HARD_REBOOT",
        "resize_prep": "RESIZE",
        "resize_migrating": "RESIZE",
        "resize_finish": "RESIZE",
        "rebuilding": "REBUILD",
    },
    "stopped": {
        "rebuilding": "REBUILD",
        "default": "SHUTOFF",
        "rebooting_hard": "HARD_REBOOT",
        "resize_prep": "RESIZE",
        "resize_migrating": "RESIZE",
        "resize_finish": "RESIZE",
    },
    "resized": {"default": "VERIFY_RESIZE"},
    "rescued": {"default": "RESCUE"},
    "suspended": {"default": "SUSPENDED"},
    "paused": {"default": "PAUSED"},
    "shelved_offloaded": {"default": "SHELVED_OFFLOADED"},
    "error": {"default": "ERROR", "rebuilding": "REBUILD"},
}


def nova_error(status: int, message: str) -> HttpError:
    key = {
        400: "badRequest",
        403: "forbidden",
        404: "itemNotFound",
        409: "conflictingRequest",
        501: "notImplemented",
    }.get(status, "computeFault")
    return HttpError(status, {key: {"code": status, "message": message}})


@dataclass
class Server:
    id: str
    name: str
    flavor: dict
    image_id: str
    metadata: dict
    tags: list
    key_name: str | None
    security_groups: list
    availability_zone: str
    addresses: dict
    user_data: str | None
    block_device_mapping: list = field(default_factory=list)
    vm_state: str = "building"
    task_state: str | None = "spawning"
    fault: dict | None = None
    created: str = field(default_factory=now_iso)
    # A transition in flight: when it lands (monotonic time) and what it does then.
    lands_at: float = 0.0
    landing: object = None
    old_flavor: dict | None = None
    stopped_before_resize: bool = False
    console: list = field(default_factory=list)
    volumes: list = field(default_factory=list)  # attached: {volume_id, device, attachment_id}
    admin_password: str | None = None  # what changePassword last set in the guest

    @property
    def status(self) -> str:
        states = _STATUS[self.vm_state]
        return states.get(self.task_state or "", states["default"])


def request_microversion(headers) -> str:
    value = headers.get("OpenStack-API-Version", "")
    if value.startswith("compute "):
        return value.split()[1]
    return headers.get("X-OpenStack-Nova-API-Version") or "2.1"


def version_tuple(version: str) -> tuple[int, int]:
    if version == "latest":
        version = NOVA_MAX_MICROVERSION
    major, minor = version.split(".")
    return int(major), int(minor)
