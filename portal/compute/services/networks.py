"""Writes for a project's private networks: each takes `access`, checks the role, validates,
changes rows under the project lock, records an audit event, and creates the operation that asks
the cloud (compute/operations/networks.py), queued on commit. Refusals are ComputeRefused (every
broken rule at once) or PlacementDenied; a refused request changes nothing.

A network is deleted only once no server is on it: the page lists the servers to detach first
(detaching quietly would cut servers off a network someone relies on). Networks are free.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass

from django.db import transaction
from django.http import HttpRequest

from portal.audit.models import AuditAction
from portal.catalog.models import Zone
from portal.compute.backends import Capability
from portal.compute.models import (
    PORT_PRESENT,
    Action,
    Instance,
    InstanceStatus,
    Network,
    NetworkPort,
    NetworkStatus,
    Operation,
    OperationState,
    PortStatus,
)
from portal.compute.models.operations import operation_deadline
from portal.compute.services.common import ComputeRefused, Problem, audit, enqueue_on_commit, lock_project
from portal.compute.services.volumes import (
    VOLUME_NAME_MAX_LENGTH,
    VOLUME_NAME_RE,
    VOLUME_NAME_RULE,
    zone_refusal,
)
from portal.residency.placement import PlacementDenied, placement_decision
from portal.residency.services import record_placement_denied
from portal.tenancy.access import Access, Perm

NS, PS = NetworkStatus, PortStatus
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(r) for r in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
PRIVATE_RANGES_SAID = "10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
# /16 holds 65,533 servers; /29 five (the first address is the gateway's, the last broadcast).
PREFIX_MIN, PREFIX_MAX = 16, 29
ATTACHABLE = frozenset({InstanceStatus.RUNNING, InstanceStatus.STOPPED})


def network_refusal(zone: Zone) -> str:
    """Why `zone` has no private networks ("Private networks are not available in ams1-b."), or ""."""
    return zone_refusal(zone, Capability.PRIVATE_NETWORKS)


def cidr_problems(cidr: str) -> tuple[ipaddress.IPv4Network | None, list[Problem]]:
    """The network `cidr` names and every reason it can't be a private network's, all at once."""
    cidr = (cidr or "").strip()
    _, slash, prefix = cidr.partition("/")
    if not slash or not prefix.isdigit():
        return None, [Problem("cidr", "Write the range as an address and a prefix, e.g. 10.20.0.0/24.")]
    if ":" in cidr:
        return None, [
            Problem("cidr", f"{cidr} is an IPv6 range: private networks are IPv4, e.g. 10.20.0.0/24.")
        ]
    if int(prefix) > 32:
        return None, [
            Problem(
                "cidr",
                f"/{prefix} is no IPv4 prefix: a prefix is /0 to /32 (use /{PREFIX_MIN} to /{PREFIX_MAX}).",
            )
        ]
    try:
        network = ipaddress.IPv4Network(cidr, strict=False)
    except ValueError:
        return None, [Problem("cidr", f"{cidr} is not an IPv4 range like 10.20.0.0/24.")]
    problems = []
    if str(network) != cidr and network.prefixlen:
        problems.append(Problem("cidr", f"{cidr} has host bits set: the range starts at {network}."))
    if network.prefixlen == 0:
        problems.append(
            Problem(
                "cidr",
                f"/0 is every address there is: use a private range of /{PREFIX_MIN} to /{PREFIX_MAX}.",
            )
        )
    elif not any(network.subnet_of(private) for private in PRIVATE_RANGES):
        problems.append(
            Problem("cidr", f"{network} is not a private range: use one inside {PRIVATE_RANGES_SAID}.")
        )
    if network.prefixlen > PREFIX_MAX:
        problems.append(
            Problem(
                "cidr",
                f"A /{network.prefixlen} is too small for servers (the gateway takes an address): "
                f"use /{PREFIX_MAX} (5 servers) or larger.",
            )
        )
    elif 0 < network.prefixlen < PREFIX_MIN:
        problems.append(
            Problem(
                "cidr",
                f"A /{network.prefixlen} is larger than a network takes: use /{PREFIX_MIN} to /{PREFIX_MAX}.",
            )
        )
    return network, problems


def _operation(
    access: Access | None, network: Network, action: Action, params: dict | None = None, user=None
) -> Operation:
    op = Operation.objects.create(
        network=network,
        action=action,
        params=params or {},
        requested_by=access.membership.user if access else user,
        deadline=operation_deadline(),
        step_token=uuid.uuid4().hex,
    )
    enqueue_on_commit([op])
    return op


def _under_way(network: Network, action: Action, instance: Instance | None = None) -> Operation | None:
    ops = network.operations.filter(action=action, state__in=[OperationState.PENDING, OperationState.RUNNING])
    if instance is not None:
        ops = ops.filter(params__instance_id=str(instance.pk))
    return ops.first()


def network_create(
    *, access: Access, name: str, zone: Zone, cidr: str, request: HttpRequest | None = None
) -> Operation:
    """A new network in `zone` with one subnet of `cidr`, made in its cloud by the operation returned.
    Refused (all reasons at once) for a bad name or range, a range overlapping another of the
    project's networks, or a zone without private networks; PlacementDenied (audited) for a zone
    the residency policy forbids."""
    access.require(Perm.RESOURCE_CREATE)
    name = (name or "").strip()
    problems = []
    if not VOLUME_NAME_RE.match(name) or len(name) > VOLUME_NAME_MAX_LENGTH:
        problems.append(Problem("name", VOLUME_NAME_RULE))
    network, cidr_refused = cidr_problems(cidr)
    problems += cidr_refused
    if not zone.region.is_active:
        problems.append(Problem("zone", "Choose one of the zones listed."))
    with transaction.atomic():
        project = lock_project(access)
        decision = placement_decision(project, zone, lock=True)
        if decision.allowed:
            if refusal := network_refusal(zone):
                problems.append(Problem("zone", refusal, 409))
            existing = list(Network.objects.existing().filter(project=project))
            if any(other.name == name for other in existing):
                problems.append(Problem("name", f"The project already has a network named “{name}”.", 409))
            if network is not None and not cidr_refused:
                for other in existing:
                    if network.overlaps(ipaddress.IPv4Network(other.cidr)):
                        problems.append(
                            Problem(
                                "cidr",
                                f"{network} overlaps {other.name} ({other.cidr}): choose another range.",
                                409,
                            )
                        )
            if problems:
                raise ComputeRefused.of(problems)
            row = Network.objects.create(
                project=project, name=name, zone=zone, cidr=str(network), created_by=access.membership.user
            )
            audit(
                access,
                AuditAction.NETWORK_CREATED,
                row,
                {"cidr": [None, row.cidr], "zone": [None, zone.code]},
                request,
            )
            return _operation(access, row, Action.NETWORK_CREATE)
    if problems:  # bad input is said before the policy
        raise ComputeRefused.of(problems)
    record_placement_denied(
        access=access,
        zone=zone,
        attempted=f"create private network {name} ({cidr}) in {zone.code}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)


def _locked_network(access: Access, network: Network) -> Network:
    locked = (
        Network.objects.existing()
        .select_for_update(of=("self",))
        .select_related("zone")
        .filter(project=access.project, pk=network.pk)
        .first()
    )
    if locked is None:
        raise ComputeRefused(f"Network {network.name} has been deleted.", status=409)
    return locked


def _network_state_problem(network: Network, doing: str) -> Problem | None:
    if network.status == NS.AVAILABLE:
        return None
    if network.status == NS.ERROR:
        return Problem(
            None, f"{network.name} is in error ({network.fault_message or 'see its page'}): delete it.", 409
        )
    return Problem(
        None, f"{network.name} is {network.get_status_display().lower()}: it can't be {doing} now.", 409
    )


def attach_problems(network: Network, instance: Instance) -> list[Problem]:
    """Every reason `instance` can't join `network` now (call with both rows locked)."""
    problems = []
    if refusal := network_refusal(network.zone):
        problems.append(Problem(None, refusal, 409))
    if problem := _network_state_problem(network, "joined"):
        problems.append(problem)
    if instance.zone_id != network.zone_id:
        problems.append(
            Problem(
                "instance",
                f"{network.name} is in {network.zone.code} and {instance.name} in {instance.zone.code}: "
                "a server can only join networks of its own zone.",
                409,
            )
        )
    if instance.status not in ATTACHABLE:
        problems.append(
            Problem(
                "instance",
                f"{instance.name} is {instance.get_status_display().lower()}: running or stopped servers join networks.",
                409,
            )
        )
    return problems


def _locked_instance(access: Access, instance: Instance) -> Instance:
    locked = (
        Instance.objects.select_for_update(of=("self",))
        .select_related("zone")
        .filter(project=access.project, pk=instance.pk)
        .exclude(status=InstanceStatus.TERMINATED)
        .first()
    )
    if locked is None:
        raise ComputeRefused("Choose one of the project's servers.", "instance")
    return locked


def network_attach(
    *, access: Access, network: Network, instance: Instance, request: HttpRequest | None = None
) -> Operation:
    """Put a running or stopped server of the network's zone on it; the cloud gives it an address
    inside the range. Asking again while the attach is under way returns that operation. The
    residency policy applies: a zone it no longer allows takes no new attachments."""
    access.require(Perm.RESOURCE_OPERATE)
    with transaction.atomic():
        project = lock_project(access)
        network = _locked_network(access, network)
        instance = _locked_instance(access, instance)
        port = network.ports.filter(instance=instance, status__in=PORT_PRESENT).first()
        if (
            port is not None
            and port.status == PS.ATTACHING
            and (running := _under_way(network, Action.NETWORK_ATTACH, instance))
        ):
            return running
        if port is not None:
            raise ComputeRefused(f"{instance.name} is already on {network.name}.", "instance", 409)
        if problems := attach_problems(network, instance):
            raise ComputeRefused.of(problems)
        decision = placement_decision(project, network.zone, lock=True)
        if decision.allowed:
            failed = network.ports.filter(instance=instance, status=PS.ERROR)
            failed.update(status=PS.DETACHED)  # a new attempt replaces a failed one
            NetworkPort.objects.create(network=network, instance=instance, status=PS.ATTACHING)
            audit(access, AuditAction.NETWORK_ATTACHED, network, {"server": [None, instance.name]}, request)
            return _operation(
                access,
                network,
                Action.NETWORK_ATTACH,
                {"instance_id": str(instance.pk), "server_id": instance.backend_id},
            )
    record_placement_denied(
        access=access,
        zone=network.zone,
        attempted=f"attach {instance.name} to private network {network.name}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)


@transaction.atomic
def network_detach(
    *, access: Access, network: Network, instance: Instance, request: HttpRequest | None = None
) -> Operation | None:
    """Take the server off the network (its port is deleted in the cloud). Asking again while the
    detach is under way returns that operation. A server still waiting to join (chosen at launch)
    is simply dropped: None, nothing to ask the cloud. A failed attach is detached in the cloud too,
    in case it left a port there."""
    access.require(Perm.RESOURCE_OPERATE)
    lock_project(access)
    network = _locked_network(access, network)
    instance = _locked_instance(access, instance)
    port = network.ports.select_for_update().filter(instance=instance).exclude(status=PS.DETACHED).first()
    if port is None:
        raise ComputeRefused(f"{instance.name} is not on {network.name}.", status=409)
    if port.status == PS.DETACHING and (running := _under_way(network, Action.NETWORK_DETACH, instance)):
        return running
    if port.status == PS.ATTACHING:
        raise ComputeRefused(
            f"{instance.name} is joining {network.name}: wait until that is done.", status=409
        )
    audit(access, AuditAction.NETWORK_DETACHED, network, {"server": [instance.name, None]}, request)
    if port.status == PS.WAITING:
        port.status = PS.DETACHED
        port.save(update_fields=["status", "updated_at"])
        return None
    port.status = PS.DETACHING
    port.save(update_fields=["status", "updated_at"])
    return _operation(
        access,
        network,
        Action.NETWORK_DETACH,
        {"instance_id": str(instance.pk), "server_id": instance.backend_id},
    )


@transaction.atomic
def network_delete(*, access: Access, network: Network, request: HttpRequest | None = None) -> Operation:
    """Delete the network in the cloud; refused while servers are on it (they are named: detach
    them first). The row stays (deleted) for the audit trail. A network in error can be deleted."""
    access.require(Perm.RESOURCE_OPERATE)
    lock_project(access)
    network = _locked_network(access, network)
    if network.status == NS.DELETING and (running := _under_way(network, Action.NETWORK_DELETE)):
        return running
    on = list(
        network.ports.filter(status__in=PORT_PRESENT)
        .select_related("instance")
        .values_list("instance__name", flat=True)
    )
    if on:
        names = ", ".join(sorted(on))
        raise ComputeRefused(
            f"{network.name} still has servers on it ({names}): detach them first.", status=409
        )
    if network.status not in (NS.AVAILABLE, NS.ERROR):
        raise ComputeRefused(
            f"{network.name} is {network.get_status_display().lower()}: wait until that is done.", status=409
        )
    network.status = NS.DELETING
    network.save(update_fields=["status", "updated_at"])
    audit(access, AuditAction.NETWORK_DELETED, network, {"cidr": [network.cidr, None]}, request)
    return _operation(access, network, Action.NETWORK_DELETE)


# --- chosen with a launch (the wizard and POST /instances) -------------------------------------


@dataclass(frozen=True)
class LaunchNetworks:
    """The networks a launch names by id: those of the project found, and a problem for each id
    that finds none. Parsing never refuses on its own, so the launch rules still judge the ones
    found and every problem shows at once."""

    networks: tuple[Network, ...] = ()
    problems: tuple[Problem, ...] = ()


def launch_networks_find(project, refs) -> LaunchNetworks:
    """The project's networks by id, in one query whatever their number. Another project's (or a
    deleted one) is answered in the words of one that does not exist: an id says nothing about
    other projects."""
    texts = list(dict.fromkeys(str(ref).strip() for ref in refs))  # each once, in the order given
    ids = {text: _as_uuid(text) for text in texts}
    found = {
        network.pk: network
        for network in Network.objects.existing()
        .select_related("zone")
        .filter(project=project, pk__in=[pk for pk in ids.values() if pk])
    }
    networks, problems = [], []
    for text, pk in ids.items():
        if pk is None:
            problems.append(Problem("networks", f"“{text[:40]}” is not a network id."))
        elif pk not in found:
            problems.append(Problem("networks", f"No private network “{text[:40]}” in this project."))
        else:
            networks.append(found[pk])
    return LaunchNetworks(tuple(networks), tuple(problems))


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def launch_network_problems(project, *, zone: Zone | None, networks) -> list[Problem]:
    """Every reason the servers of a launch in `zone` can't join `networks` (the project's,
    available, in that zone, which has private networks)."""
    problems = []
    if networks and zone is not None and (refusal := network_refusal(zone)):
        return [Problem("networks", refusal, 409)]
    for network in networks:
        if network.project_id != project.pk:
            problems.append(Problem("networks", "Choose networks of this project."))
        elif zone is not None and network.zone_id != zone.pk:
            problems.append(
                Problem(
                    "networks",
                    f"Network {network.name} is in {network.zone.code}, not {zone.code}: a server joins "
                    "networks of its own zone.",
                    409,
                )
            )
        elif network.status != NS.AVAILABLE:
            problems.append(
                Problem("networks", f"Network {network.name} is {network.get_status_display().lower()}.", 409)
            )
    return problems


def launch_ports_create(*, instances, networks) -> None:
    """Each new server waits to join each chosen network (compute/operations/launch_networks.py)."""
    NetworkPort.objects.bulk_create(
        NetworkPort(network=network, instance=instance, status=PS.WAITING)
        for instance in instances
        for network in networks
    )
