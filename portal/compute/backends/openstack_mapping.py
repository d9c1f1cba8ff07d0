"""What the OpenStack backend reads off the cloud's answers, without calling it: Nova's states and
faults in the portal's terms, Cinder's and Glance's states for volumes and snapshots, openstacksdk's and keystoneauth's exceptions as Transient, Rejected or
NotFound, and the names, rules and user data the backend asks for (docs/backends/openstack.md).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import uuid
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from urllib.parse import urlsplit

from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as sdk_exceptions

from portal.compute.backends.base import BackendError, BackendState, NotFound, Rejected, Transient
from portal.compute.backends.storage import SnapshotCloudState, VolumeCloudState

B = BackendState
V = VolumeCloudState
S = SnapshotCloudState

TAG_PREFIX = "portal-"

NOT_CONNECTED = "This zone is not connected to a cloud right now. Please choose another zone."
BUSY = "The cloud is busy right now; we will try again."
NO_CAPACITY = "This zone has no capacity for that size right now — try another size or zone."
GONE = "The server no longer exists in the cloud."
VOLUME_GONE = "The volume no longer exists in the cloud."
SNAPSHOT_GONE = "The snapshot no longer exists in the cloud."
GENERIC_FAULT = "The cloud could not complete this for the server. Please try again; if it keeps failing, contact support."

# Nova's fault and error messages, in the customer's words. First match wins; the raw text goes to
# `detail` and to the log, never to the customer.
FAULTS = (
    (r"no valid host", NO_CAPACITY),
    (r"exhausted all hosts|exceeded maximum number of retries", NO_CAPACITY),
    (
        r"quota exceeded|exceeds .*quota|over ?quota",
        "This zone has reached its limit for our account, so the server could not be created. "
        "Try another zone, or contact support.",
    ),
    (
        r"disk is too small|smaller than the image|image.*larger than|smaller than the minimum size",
        "That size's disk is too small for the chosen image. Pick a larger size or root disk.",
    ),
    (
        r"image .*(not found|could not be found|is not active)|invalid imageref",
        "The chosen image is not available in this zone right now. Try another image or zone.",
    ),
    (
        r"flavor .*(not found|could not be found)|invalid flavorref",
        "That size is not available in this zone right now. Try another size or zone.",
    ),
    (r"availability zone", "This zone is not accepting servers right now. Try another zone."),
    (
        r"block device|volume",
        "The server's disk could not be created in this zone. Please try again, or contact support.",
    ),
    (
        r"network|\bport\b|floating ?ip|ip address",
        "The server's network could not be set up in this zone. Please try again, or contact support.",
    ),
    (r"user data", "The start-up script (user data) was refused by the cloud; check its size and format."),
    (r"key ?pair|key_name", "The SSH key was refused by the cloud; check that it is a valid public key."),
)

# How each state reads in "The server is … right now".
IS_DOING = {
    B.BUILDING: "still being created",
    B.RUNNING: "running",
    B.STOPPING: "stopping",
    B.STOPPED: "stopped",
    B.STARTING: "starting",
    B.REBOOTING: "rebooting",
    B.RESIZING: "being resized",
    B.REBUILDING: "having its disk restored",
    B.RESCUING: "entering rescue mode",
    B.RESCUE: "in rescue mode",
    B.UNRESCUING: "leaving rescue mode",
    B.DELETING: "being deleted",
    B.ERROR: "in an error state",
}


def plain_fault(message: str) -> str:
    """A customer sentence for a Nova fault or error message."""
    lowered = message.lower()
    for pattern, sentence in FAULTS:
        if re.search(pattern, lowered):
            return sentence
    return GENERIC_FAULT


def server_state(status: str, task_state: str | None) -> B:
    """The portal's state for Nova's status and task state.

    Nova keeps the old status while a task runs: a stopping server is still ACTIVE with task
    `powering-off`, a starting one SHUTOFF with `powering-on`, so the task decides first.
    """
    task = task_state or ""
    if task == "deleting" or status == "SOFT_DELETED":
        return B.DELETING
    if status == "BUILD":
        return B.BUILDING
    if status == "REBUILD" or task.startswith("rebuild"):
        return B.REBUILDING
    if task == "rescuing":
        return B.RESCUING
    if task == "unrescuing":
        return B.UNRESCUING
    if status == "RESCUE":
        return B.RESCUE
    if task == "powering-off":
        return B.STOPPING
    if task in ("powering-on", "resuming", "unpausing", "unshelving", "spawning"):
        return B.STARTING
    if status in ("REBOOT", "HARD_REBOOT") or task.startswith("reboot"):
        return B.REBOOTING
    if status in ("RESIZE", "VERIFY_RESIZE", "REVERT_RESIZE", "MIGRATING") or task.startswith(
        ("resize", "migrat")
    ):
        return B.RESIZING
    if status in ("ACTIVE", "PASSWORD"):
        return B.RUNNING
    if status in ("SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED"):
        return B.STOPPED
    if status == "ERROR":
        return B.ERROR
    # UNKNOWN: Nova lost touch with the host; it usually comes back.
    raise Transient(BUSY, f"server status {status!r} (task {task_state!r})")


def is_uuid(value: str) -> bool:
    """An id as Glance and Nova make them (a mapping's value is an id or a name)."""
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def keypair_name(public_key: str) -> str:
    """Named after the key itself (type and body, not the comment): the same key, the same keypair."""
    return TAG_PREFIX + hashlib.sha256(" ".join(public_key.split()[:2]).encode()).hexdigest()[:20]


def security_group_rules(firewall_rules: tuple[dict, ...]) -> list[dict]:
    """Neutron ingress rules for the portal's firewall rules; none at all means all inbound allowed
    (the launch form's "None: all inbound traffic allowed")."""
    if not firewall_rules:
        return [
            {
                "ethertype": "IPv4",
                "protocol": None,
                "port_range_min": None,
                "port_range_max": None,
                "remote_ip_prefix": "0.0.0.0/0",
            },
            {
                "ethertype": "IPv6",
                "protocol": None,
                "port_range_min": None,
                "port_range_max": None,
                "remote_ip_prefix": "::/0",
            },
        ]
    rules = []
    for rule in firewall_rules:
        network = ipaddress.ip_network(str(rule["source"]).strip(), strict=False)
        protocol = str(rule.get("protocol") or "tcp").lower()
        low, high = rule.get("port_from"), rule.get("port_to")
        if protocol == "icmp":
            low = high = None
            if network.version == 6:
                protocol = "ipv6-icmp"
        elif low is not None and high is None:
            high = low
        rules.append(
            {
                "ethertype": f"IPv{network.version}",
                "protocol": protocol,
                "port_range_min": low,
                "port_range_max": high,
                "remote_ip_prefix": str(network),
            }
        )
    unique = {json.dumps(rule, sort_keys=True): rule for rule in rules}
    return [unique[key] for key in sorted(unique)]


def security_group_name(rules: list[dict]) -> str:
    """Named after its rules: a group never changes, a different set of rules is another group."""
    return f"{TAG_PREFIX}fw-" + hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:20]


def user_data_with_keys(user_data: str, extra_keys: list[str]) -> str:
    """The customer's user data, plus cloud-init config for the SSH keys Nova's single keypair can't
    hold (a server gets one keypair; every further key goes in through cloud-init)."""
    if not extra_keys:
        return user_data
    keys_config = "#cloud-config\n" + json.dumps({"ssh_authorized_keys": extra_keys}) + "\n"
    if not user_data:
        return keys_config
    message = MIMEMultipart()
    if user_data.startswith("#cloud-config"):
        kind = "cloud-config"
    elif user_data.startswith("#!"):
        kind = "x-shellscript"
    else:
        kind = "plain"  # cloud-init recognises the kind by its first line
    message.attach(MIMEText(user_data, kind, "utf-8"))
    keys = MIMEText(keys_config, "cloud-config", "utf-8")
    # Add our keys to any the customer's own cloud-config lists instead of replacing them.
    keys["Merge-Type"] = "list(append)+dict(recurse_array)+str()"
    message.attach(keys)
    return message.as_string()


def flavor_code(flavor_names: dict[str, str], server_flavor) -> str:
    """The portal's code for a server's flavor, through the zone's code → Nova name mapping."""
    nova_name = getattr(server_flavor, "original_name", None) or getattr(server_flavor, "name", None) or ""
    reverse = {name: code for code, name in flavor_names.items()}
    return reverse.get(nova_name, nova_name)


def server_addresses(addresses: dict) -> tuple[str, ...]:
    """Floating addresses first, then fixed IPv4, then IPv6: the first is what customers SSH to."""
    found = [entry for entries in addresses.values() for entry in entries if entry.get("addr")]

    def rank(entry: dict) -> tuple[int, int]:
        return (0 if entry.get("OS-EXT-IPS:type") == "floating" else 1, 0 if entry.get("version") == 4 else 1)

    ordered = sorted(found, key=rank)
    return tuple(dict.fromkeys(entry["addr"] for entry in ordered))


def _status_code(error: Exception) -> int | None:
    return getattr(error, "status_code", None) or getattr(error, "http_status", None)


def _causes(error: BaseException):
    """The error and what it was raised from (keystoneauth wraps the HTTP error it met in discovery)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def error_text(error: Exception) -> str:
    """What the cloud said, without the request's noise (sdk messages repeat the URL)."""
    details = getattr(error, "details", None)
    return str(details or error)


def answered_by_the_api(error: Exception) -> bool:
    """The error answer is an OpenStack API's (JSON), not a web server's or a dashboard's page."""
    response = getattr(error, "response", None)
    if response is None:
        return False
    return "json" in (response.headers.get("Content-Type") or "").lower()


def is_gone(error: Exception, collection: str, thing_id: str) -> bool:
    """A 404 from the API for the thing itself (GET/POST/DELETE …/<collection>/{id}…): it no longer
    exists. A 404 anywhere else — another route, or a web page where the API should be — is not that."""
    if not thing_id or _status_code(error) != 404 or not answered_by_the_api(error):
        return False
    path = urlsplit(getattr(error, "url", None) or "").path
    return re.search(rf"/{collection}/{re.escape(thing_id)}(/|$)", path) is not None


def server_is_gone(error: Exception, server_id: str) -> bool:
    return is_gone(error, "servers", server_id)


def translated_error(
    what: str,
    error: Exception,
    *,
    auth_url: str = "",
    server_id: str = "",
    gone: tuple[str, str, str] = (),
    fault=plain_fault,
) -> BackendError:
    """What openstacksdk or keystoneauth raised, as one of the portal's three kinds of error.

    `auth_url` tells Keystone's answers from the other services'; `server_id` is the server the call
    was about, the only thing whose 404 means NotFound (or `gone`: the collection, id and message of
    another thing, a volume or a snapshot); `fault` words a refusal for the customer. A wrong URL (a 404, a web page, no version
    document) is a configuration error: Rejected as "not connected", with a `detail` that tells the
    operator what to fix, instead of being retried as if the cloud were busy."""
    if type(error) is sdk_exceptions.SDKException and isinstance(
        error.__context__, ks_exceptions.ClientException
    ):
        error = error.__context__  # `Connection.authorize` re-raises keystoneauth's error as a bare one
    status = _status_code(error)
    detail = f"{what}: {type(error).__name__}: {error_text(error)}"
    text = error_text(error)
    if any(isinstance(cause, ks_exceptions.ConnectionError) for cause in _causes(error)):
        return Transient(BUSY, detail)  # refused, reset, timed out (discovery wraps them too)
    misconfigured = (
        sdk_exceptions.ConfigException,
        sdk_exceptions.EndpointNotFound,
        sdk_exceptions.DuplicateResource,
        ks_exceptions.EndpointNotFound,
        ks_exceptions.MissingRequiredOptions,
    )
    if isinstance(error, misconfigured):
        return Rejected(NOT_CONNECTED, detail)
    url = getattr(error, "url", None) or ""
    from_keystone = isinstance(error, ks_exceptions.DiscoveryFailure) and "identity" in text
    from_keystone = from_keystone or bool(auth_url and url.startswith(auth_url.rstrip("/")))
    if from_keystone and status is None:
        # Discovery wraps the HTTP error it met: its status is what the operator needs to see.
        status = next((_status_code(cause) for cause in _causes(error) if _status_code(cause)), None)
    if status == 401:
        # keystoneauth already signed in again once: the credentials themselves are refused.
        return Transient("We could not sign in to this zone's cloud; we will try again.", detail)
    if status is not None and (status in (408, 429) or status >= 500):
        return Transient(BUSY, detail)
    if from_keystone:
        if status is not None:
            answer = str(status)
        elif "<" in text:
            answer = "a web page, not the identity API"
        else:
            answer = "no identity version document"
        return Rejected(NOT_CONNECTED, f"Keystone did not answer at {auth_url} ({answer}): check auth_url")
    if isinstance(error, ks_exceptions.DiscoveryFailure):
        return Rejected(
            NOT_CONNECTED, f"{what}: version discovery failed ({text}): check the cloud's catalog"
        )
    if status is None:
        return Transient(BUSY, detail)  # an answer we could not read
    if status == 404:
        if server_is_gone(error, server_id):
            return NotFound(GONE, detail)
        if gone and is_gone(error, gone[0], gone[1]):
            return NotFound(gone[2], detail)
        method = getattr(error, "method", None) or ""
        if answered_by_the_api(error):
            why = "the cloud does not have this call (an API extension or route missing)"
        else:
            why = "a web page, not the API, answered: check this service's endpoint in the cloud's catalog"
        return Rejected(NOT_CONNECTED, f"{what}: {method} {url} answered 404: {why}")
    return Rejected(fault(text), detail)


# --- storage: Cinder volumes and snapshots, Glance images made of servers ---------------------------

STORAGE_FAULT = (
    "The cloud could not complete this for the volume or snapshot. Please try again; if it keeps "
    "failing, contact support."
)
# Cinder's, Nova's and Glance's refusals of a storage request, in the customer's words (first match).
STORAGE_FAULTS = (
    (
        r"quota|exceeds allowed|over ?limit|storage limit",
        "This zone has reached its storage limit for our account. Delete volumes or snapshots you no "
        "longer need, try another zone, or contact support.",
    ),
    (
        r"smaller than the snapshot|>= original snapshot size",
        "A volume made from a snapshot must be at least as large as the snapshot.",
    ),
    (
        r"new size for extend must be greater",
        "A volume can only grow: choose a size larger than its current one.",
    ),
    (
        r"not in the same availability.?zone|same availability zone as the snapshot",
        "The volume and the server are in different parts of the zone's cloud, so it cannot be attached "
        "there. Contact support.",
    ),
    (r"availability zone", "Volumes cannot be made in this zone right now. Try another zone."),
    (r"volume type", "This zone's kind of volume is not available right now. Please contact support."),
)

# Cinder's volume statuses (cinder.objects.fields.VolumeStatus). Statuses the portal does not cause
# (backing-up, uploading, retyping, maintenance…) keep the volume where it was: `volume_state` reads
# them by its attachments.
VOLUME_STATES = {
    "creating": V.CREATING,
    "downloading": V.CREATING,  # made from an image
    "restoring-backup": V.CREATING,
    "available": V.AVAILABLE,
    "reserved": V.ATTACHING,
    "attaching": V.ATTACHING,
    "in-use": V.IN_USE,
    "detaching": V.DETACHING,
    "extending": V.EXTENDING,
    "deleting": V.DELETING,
    "error": V.ERROR,
    "error_deleting": V.ERROR,
    "error_extending": V.ERROR,
    "error_restoring": V.ERROR,
    "error_managing": V.ERROR,
}
VOLUME_FAULTS = {
    "error": "The volume could not be created. Delete it and try again; if it keeps failing, contact support.",
    "error_deleting": "The volume could not be deleted. Please try again; if it keeps failing, contact support.",
    "error_extending": "The volume could not be made larger; its data is unchanged. Please contact support.",
    "error_restoring": "The volume could not be restored. Please contact support.",
    "error_managing": "The volume could not be taken over. Please contact support.",
}
# Why a volume refuses a request, by the status it is in (for "…right now, so it can't be …").
VOLUME_BUSY = {
    V.CREATING: "still being created",
    V.ATTACHING: "being attached",
    V.IN_USE: "attached to a server",
    V.DETACHING: "being detached",
    V.EXTENDING: "being made larger",
    V.DELETING: "being deleted",
    V.ERROR: "in an error state",
    V.AVAILABLE: "busy in the cloud",
}

# Cinder's snapshot statuses (cinder.objects.fields.SnapshotStatus).
CINDER_SNAPSHOT_STATES = {
    "creating": S.CREATING,
    "available": S.AVAILABLE,
    "backing-up": S.AVAILABLE,
    "restoring": S.AVAILABLE,
    "deleting": S.DELETING,
    "deleted": S.DELETING,
    "unmanaging": S.DELETING,
    "error": S.ERROR,
    "error_deleting": S.ERROR,
}
# Glance's image statuses: a server snapshot is queued, then saving (Nova uploads the disk), then
# active. `killed` is an upload that failed; `deactivated` is an image an operator took away.
IMAGE_SNAPSHOT_STATES = {
    "queued": S.CREATING,
    "saving": S.CREATING,
    "uploading": S.CREATING,
    "importing": S.CREATING,
    "active": S.AVAILABLE,
    "pending_delete": S.DELETING,
    "deleted": S.DELETING,
    "killed": S.ERROR,
    "deactivated": S.ERROR,
}
SNAPSHOT_FAULT = (
    "The snapshot could not be made. Delete it and try again; if it keeps failing, contact support."
)


def storage_fault(message: str) -> str:
    """A customer sentence for Cinder's, Nova's or Glance's refusal of a storage request."""
    lowered = message.lower()
    for pattern, sentence in STORAGE_FAULTS:
        if re.search(pattern, lowered):
            return sentence
    return STORAGE_FAULT


def volume_state(status: str, attached: bool) -> V:
    """The portal's state for a Cinder volume status (`attached`: its attachments are not empty)."""
    state = VOLUME_STATES.get(status)
    if state is not None:
        return state
    if not status:
        raise Transient(BUSY, "a volume without a status")
    return V.IN_USE if attached else V.AVAILABLE


def volume_fault(status: str) -> str:
    return VOLUME_FAULTS.get(status, VOLUME_FAULTS["error"]) if VOLUME_STATES.get(status) == V.ERROR else ""


def snapshot_state(status: str, *, image: bool) -> S:
    """The portal's state for a Glance image's status (`image`) or a Cinder snapshot's."""
    states = IMAGE_SNAPSHOT_STATES if image else CINDER_SNAPSHOT_STATES
    state = states.get(status)
    if state is None:
        raise Transient(BUSY, f"snapshot status {status!r}")
    return state


def gib_up(size_bytes: int | None) -> int:
    """Bytes as whole GiB, rounded up (what a snapshot occupies, for billing)."""
    return -(-int(size_bytes or 0) // 1024**3)
