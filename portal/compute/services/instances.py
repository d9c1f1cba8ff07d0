"""Writes that create, change and remove servers. Each validates against the catalog, the placement
decision and the quota, records operations and an audit event, and enqueues work after commit."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.budgets.guard import budget_guard
from portal.catalog.models import Flavor, Image, Zone
from portal.compute import reverse_dns
from portal.compute.backends import Capability
from portal.compute.models import (
    ACTIONS,
    NEEDS_CAPABILITY,
    Action,
    FirewallRuleSet,
    Instance,
    InstanceStatus,
    LaunchBatch,
    Operation,
    OperationState,
    SshKey,
)
from portal.compute.models.operations import operation_deadline
from portal.compute.presets import rule_set_from_preset
from portal.compute.pricing import price_per_hour
from portal.compute.quota import QuotaExceeded, check_quota
from portal.compute.services.common import ComputeRefused, Problem, enqueue_on_commit
from portal.compute.services.consoles import console_sessions_end
from portal.compute.services.launch_addresses import launch_addresses_allocate
from portal.compute.services.launch_volumes import (
    NewVolume,
    launch_volume_problems,
    launch_volumes_create,
    launch_volumes_gib,
    launch_volumes_hourly,
)
from portal.compute.services.networks import launch_network_problems, launch_ports_create
from portal.compute.snapshot_rules import capability_refusal
from portal.ipam.services import AddressesExhausted, exhaustion_alert_raise
from portal.metering.segments import sync_instance
from portal.residency.placement import PlacementDenied, placement_decision
from portal.residency.services import record_placement_denied
from portal.tenancy.access import Access, Perm
from portal.tenancy.models import Project

NAME_MAX_LENGTH = 63  # a DNS label: the server's hostname
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
NAME_RULE = (
    "Use lower-case letters, digits and hyphens (not at the start or end), "
    f"at most {NAME_MAX_LENGTH} characters."
)
# The bounds of a launch, checked here and nowhere else; the wizard's inputs and the API's schema
# read them (the count's is settings.COMPUTE_MAX_LAUNCH_COUNT, user data's
# settings.COMPUTE_USER_DATA_MAX_BYTES).
ROOT_DISK_MAX_GIB = 4096


@dataclass(frozen=True)
class LaunchRequest:
    name: str
    count: int
    zone: Zone
    flavor: Flavor
    image: Image
    root_disk_gib: int
    ssh_keys: tuple[SshKey, ...] = ()
    firewall: FirewallRuleSet | None = None
    user_data: str = ""
    termination_protection: bool = False
    new_keys: tuple = ()  # parsed PublicKey objects to save to the project with the launch
    firewall_preset: object = None  # a presets.Preset to turn into a rule set with the launch
    new_volumes: tuple[NewVolume, ...] = ()  # created with each server, attached once it runs
    existing_volumes: tuple = ()  # Volume rows of the project, attached to the (single) server
    networks: tuple = ()  # private networks of the project each server joins once it runs


def launch_names(name: str, count: int) -> list[str]:
    return [name] if count == 1 else [f"{name}-{i}" for i in range(1, count + 1)]


def launch_problems(
    project: Project,
    *,
    name: str | None = None,
    count: int | None = None,
    zone: Zone | None = None,
    flavor: Flavor | None = None,
    image: Image | None = None,
    root_disk_gib: int | None = None,
    user_data: str | None = None,
    ssh_keys: tuple[SshKey, ...] = (),
    firewall: FirewallRuleSet | None = None,
    new_volumes: tuple[NewVolume, ...] = (),
    existing_volumes: tuple = (),
    networks: tuple = (),
) -> list[Problem]:
    """Every rule of a launch that can be checked without locks, each broken one a Problem naming
    its field, so that all of them are shown at once. None means "not given, or not understood":
    the rules that need that value are left out (a root disk of None is the default one)."""
    problems: list[Problem] = []

    def refuse(field: str, message: str, status: int = 400) -> None:
        problems.append(Problem(field, message, status))

    max_count = settings.COMPUTE_MAX_LAUNCH_COUNT
    count_ok = count is not None and 1 <= count <= max_count
    if name is not None:
        if not NAME_RE.match(name) or len(name) > NAME_MAX_LENGTH:
            refuse("name", NAME_RULE)
        elif count_ok and len(launch_names(name, count)[-1]) > NAME_MAX_LENGTH:
            refuse("name", "The name is too long once numbered (-1, -2, …); shorten it.")
    if count is not None and not count_ok:
        refuse("count", f"Launch between 1 and {max_count} servers at a time.")
    zone_ok = zone is not None and zone.region.is_active
    if zone is not None and not zone_ok:
        refuse("zone", "Choose one of the zones listed.")
    elif zone is not None and not zone.accepts_launches:
        refuse("zone", zone.refusal, 409)
    if flavor is not None and (
        not flavor.is_active or (zone_ok and not flavor.zones.filter(pk=zone.pk).exists())
    ):
        where = f" in {zone.code}" if zone_ok else ""
        refuse("flavor", f"The {flavor.name} size is not offered{where}; pick another size.")
    if image is not None and image.project_id not in (None, project.pk):
        refuse("image", "Choose an image of this project.")
    elif image is not None and (
        not image.is_active or (zone_ok and not image.zones.filter(pk=zone.pk).exists())
    ):
        where = f" in {zone.code}" if zone_ok else ""
        refuse("image", f"{image.name} is not offered{where}; pick another image.")
    if root_disk_gib is not None:
        minimum = max(image.min_disk_gib if image else 1, flavor.root_disk_gib if flavor else 1)
        if root_disk_gib > ROOT_DISK_MAX_GIB:
            refuse(
                "root_disk_gib",
                f"The root disk can be at most {ROOT_DISK_MAX_GIB} GiB; add volumes for more space.",
            )
        elif root_disk_gib < minimum and flavor is not None and image is not None:
            refuse(
                "root_disk_gib",
                f"The root disk must be at least {minimum} GiB "
                f"({image.name} needs {image.min_disk_gib} GiB; the {flavor.name} size includes "
                f"{flavor.root_disk_gib} GiB).",
            )
        elif root_disk_gib < minimum:
            refuse("root_disk_gib", f"The root disk must be at least {minimum} GiB.")
    if user_data is not None:
        size, limit = len(user_data.encode()), settings.COMPUTE_USER_DATA_MAX_BYTES
        if size > limit:
            refuse("user_data", f"User data is {size / 1024:.1f} KiB; the limit is {limit // 1024} KiB.")
    if any(key.project_id != project.pk for key in ssh_keys):
        refuse("ssh_keys", "Choose SSH keys of this project.")
    if firewall is not None and firewall.project_id != project.pk:
        refuse("firewall", "Choose a firewall of this project.")
    names_ok = name is not None and count_ok and not any(p.field in ("name", "count") for p in problems)
    problems += launch_volume_problems(
        project,
        server_names=launch_names(name, count) if names_ok else None,
        count=count,
        zone=zone,
        new_volumes=new_volumes,
        existing_volumes=existing_volumes,
    )
    problems += launch_network_problems(project, zone=zone, networks=networks)
    return problems


def validate_launch(project: Project, req: LaunchRequest) -> None:
    """Raises ComputeRefused listing every problem launch_problems finds."""
    problems = launch_problems(
        project,
        name=req.name,
        count=req.count,
        zone=req.zone,
        flavor=req.flavor,
        image=req.image,
        root_disk_gib=req.root_disk_gib,
        user_data=req.user_data,
        ssh_keys=req.ssh_keys,
        firewall=req.firewall,
        new_volumes=req.new_volumes,
        existing_volumes=req.existing_volumes,
        networks=req.networks,
    )
    if problems:
        raise ComputeRefused.of(problems)


def instance_launch(*, access: Access, req: LaunchRequest, request: HttpRequest | None = None) -> LaunchBatch:
    """Create `req.count` servers (names numbered when more than one) and queue their provisioning.

    Raises ComputeRefused (bad input, 4xx; "No addresses left in fra1-a." when the zone's address
    pools are used up, and the operators are alerted), QuotaExceeded or PlacementDenied (audited).
    """
    try:
        return _launch(access=access, req=req, request=request)
    except AddressesExhausted as exhausted:
        # The launch was rolled back; the alert is written outside it.
        exhaustion_alert_raise(zone=req.zone, family=exhausted.family)
        raise ComputeRefused(str(exhausted), "zone", 409) from None


def _launch(*, access: Access, req: LaunchRequest, request: HttpRequest | None) -> LaunchBatch:
    access.require(Perm.RESOURCE_CREATE)
    project = access.project
    validate_launch(project, req)
    user = access.membership.user
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        decision = placement_decision(project, req.zone, lock=True)
        if decision.allowed:
            check_quota(
                project,
                instances=req.count,
                vcpus=req.count * req.flavor.vcpus,
                ram_gib=req.count * req.flavor.ram_gib,
                volume_gib=launch_volumes_gib(req.new_volumes, req.count),
            )
            hourly = price_per_hour(req.flavor, req.image, req.root_disk_gib) * req.count
            guard = budget_guard(project, hourly + launch_volumes_hourly(req.new_volumes, req.count), user)
            if not guard.allowed:
                raise ComputeRefused(guard.message, None, 403)
            batch = LaunchBatch.objects.create(project=project, requested_by=user)
            batch.budget_warning = guard.message
            ssh_keys = list(req.ssh_keys) + [_save_key(project, key, user) for key in req.new_keys]
            firewall = req.firewall
            if req.firewall_preset is not None:
                firewall = rule_set_from_preset(project, req.firewall_preset, user)
            instances = Instance.objects.bulk_create(
                Instance(
                    project=project,
                    name=name,
                    zone=req.zone,
                    flavor=req.flavor,
                    image=req.image,
                    root_disk_gib=req.root_disk_gib,
                    firewall=firewall,
                    user_data=req.user_data,
                    termination_protection=req.termination_protection,
                    batch=batch,
                    created_by=user,
                )
                for name in launch_names(req.name, req.count)
            )
            launch_addresses_allocate(zone=req.zone, instances=instances)
            Instance.ssh_keys.through.objects.bulk_create(
                Instance.ssh_keys.through(instance_id=instance.pk, sshkey_id=key.pk)
                for instance in instances
                for key in {key.pk: key for key in ssh_keys}.values()
            )
            # One step token for the launch: its servers' first steps are claimed together.
            token, deadline = uuid.uuid4().hex, operation_deadline()
            operations = Operation.objects.bulk_create(
                Operation(
                    instance=instance,
                    action=Action.CREATE,
                    requested_by=user,
                    deadline=deadline,
                    step_token=token,
                )
                for instance in instances
            )
            operations += launch_volumes_create(
                project=project,
                instances=instances,
                new_volumes=req.new_volumes,
                existing_volumes=req.existing_volumes,
                user=user,
                request=request,
            )
            launch_ports_create(instances=instances, networks=req.networks)
            audit_record(
                action=AuditAction.INSTANCES_LAUNCHED,
                organization=project.organization,
                project=project,
                target=batch,
                changes={
                    "names": [None, ", ".join(launch_names(req.name, req.count))],
                    "zone": [None, req.zone.code],
                    "size": [None, req.flavor.code],
                    "image": [None, req.image.name],
                }
                | (
                    {"volumes": [None, ", ".join(_volumes_said(req))]}
                    if req.new_volumes or req.existing_volumes
                    else {}
                )
                | ({"networks": [None, ", ".join(n.name for n in req.networks)]} if req.networks else {}),
                actor=user,
                request=request,
            )
            enqueue_on_commit(operations)
            return batch
    record_placement_denied(
        access=access,
        zone=req.zone,
        attempted=f"launch {req.count} server(s) in {req.zone.code}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)


def _volumes_said(req: LaunchRequest) -> list[str]:
    each = " each" if req.count > 1 else ""
    return [f"new {v.name} ({v.size_gib} GiB){each}" for v in req.new_volumes] + [
        v.name for v in req.existing_volumes
    ]


def _save_key(project: Project, key, user) -> SshKey:
    """A key pasted or uploaded in the wizard: reuse the project's copy if it has one."""
    existing = SshKey.objects.filter(project=project, fingerprint=key.fingerprint).first()
    if existing:
        return existing
    base = (key.comment or key.key_type)[:60] or "key"
    name, n = base, 2
    while SshKey.objects.filter(project=project, name=name).exists():
        name, n = f"{base} ({n})", n + 1
    return SshKey.objects.create(
        project=project,
        name=name,
        public_key=key.normalized,
        key_type=key.key_type,
        bits=key.bits,
        fingerprint=key.fingerprint,
        created_by=user,
    )


def instance_action(
    *,
    access: Access,
    instance: Instance,
    action: str,
    flavor: Flavor | None = None,
    confirm_name: str | None = None,
    request: HttpRequest | None = None,
) -> Operation:
    """Start, stop, reboot, hard-reboot, resize, terminate, rescue or leave rescue. Asking again
    while the same action is still under way returns that operation and changes nothing. An action
    the zone may not have (NEEDS_CAPABILITY) is refused, naming the zone, where it does not."""
    access.require(Perm.RESOURCE_OPERATE)
    rule = ACTIONS.get(action)
    if rule is None:
        raise ComputeRefused("Unknown action.")
    needs = NEEDS_CAPABILITY.get(action)
    if needs and (refusal := capability_refusal(instance.zone, Capability(needs))):
        raise ComputeRefused(refusal, status=409)
    user = access.membership.user
    if action == Action.TERMINATE and (confirm_name or "").strip() != instance.name:
        raise ComputeRefused(f"Type the server's name “{instance.name}” to confirm.", "confirm_name")
    if action == Action.RESIZE:
        if flavor is None:
            raise ComputeRefused("Choose the new size.", "flavor")
        if flavor.pk == instance.flavor_id:
            raise ComputeRefused(f"The server already has the {flavor.name} size.", "flavor")
        if not flavor.is_active or not flavor.zones.filter(pk=instance.zone_id).exists():
            raise ComputeRefused(f"The {flavor.name} size is not offered in {instance.zone.code}.", "flavor")

    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=instance.project_id)
        instance = Instance.objects.select_for_update().select_related("flavor", "zone").get(pk=instance.pk)
        running = instance.operations.filter(
            action=action, state__in=[OperationState.PENDING, OperationState.RUNNING]
        )
        if instance.status == rule.during and running.exists():
            return running.first()  # the same request again: nothing new
        if not instance.allows(action):
            allowed = ", ".join(sorted(InstanceStatus(s).label.lower() for s in rule.allowed_from))
            raise ComputeRefused(
                f"{instance.name} is {instance.get_status_display().lower()}: “{rule.verb}” works only when "
                f"it is {allowed}.",
                status=409,
            )
        if action == Action.TERMINATE and instance.termination_protection:
            raise ComputeRefused(
                f"{instance.name} has termination protection. Turn it off first if you really mean it.",
                status=409,
            )
        if action == Action.RESIZE:
            decision = placement_decision(project, instance.zone, lock=True)
            if decision.allowed:
                check_quota(
                    project,
                    vcpus=max(0, flavor.vcpus - instance.flavor.vcpus),
                    ram_gib=max(0, flavor.ram_gib - instance.flavor.ram_gib),
                )
        if action != Action.RESIZE or decision.allowed:
            params = {"flavor_id": flavor.pk} if flavor else {}
            if action == Action.TERMINATE and instance.addresses:
                # Released with the server: its page says afterwards which addresses it had.
                params["addresses"] = list(instance.addresses)
            operation = Operation.objects.create(
                instance=instance, action=action, requested_by=user, params=params
            )
            instance.status = rule.during
            instance.save(update_fields=["status", "updated_at"])
            sync_instance(instance)
            audit_record(
                action=AuditAction.INSTANCE_ACTION,
                organization=project.organization,
                project=project,
                target=instance,
                changes={"action": [None, rule.verb]}
                | ({"size": [instance.flavor.code, flavor.code]} if flavor else {}),
                actor=user,
                request=request,
            )
            enqueue_on_commit([operation])
            if action in (Action.STOP, Action.TERMINATE, Action.RESCUE, Action.UNRESCUE):
                # (Rescue boots another system: the serial line's session ends with the old one.)
                ended = (
                    f"{instance.name} is {InstanceStatus(rule.during).label.lower()}: the console was closed."
                )
                transaction.on_commit(lambda: console_sessions_end(instance, ended))
            return operation
    record_placement_denied(
        access=access,
        zone=instance.zone,
        attempted=f"resize {instance.name}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)


@transaction.atomic
def instance_set_protection(
    *, access: Access, instance: Instance, protected: bool, request: HttpRequest | None = None
) -> Instance:
    access.require(Perm.RESOURCE_OPERATE)
    instance = Instance.objects.select_for_update().get(pk=instance.pk)
    if instance.termination_protection != protected:
        instance.termination_protection = protected
        instance.save(update_fields=["termination_protection", "updated_at"])
        audit_record(
            action=AuditAction.INSTANCE_PROTECTION,
            organization=access.organization,
            project=access.project,
            target=instance,
            changes={"termination_protection": [not protected, protected]},
            actor=access.membership.user,
            request=request,
        )
    return instance


@transaction.atomic
def instance_set_reverse_dns(
    *, access: Access, instance: Instance, name: str, request: HttpRequest | None = None
) -> Instance:
    """Set (or with "" clear) the name the server's public address resolves back to. Raises
    ComputeRefused with every problem of the name, or 409 for a server without a public address."""
    access.require(Perm.RESOURCE_OPERATE)
    name = reverse_dns.normalize(name)
    problems = [Problem("name", message) for message in reverse_dns.name_problems(name)]
    if problems:
        raise ComputeRefused.of(problems)
    instance = Instance.objects.select_for_update().get(pk=instance.pk)
    if name and (instance.status == InstanceStatus.TERMINATED or not instance.public_address):
        raise ComputeRefused(
            f"{instance.name} has no public address yet: set its reverse DNS once it has one.", status=409
        )
    if instance.reverse_dns != name:
        audit_record(
            action=AuditAction.INSTANCE_REVERSE_DNS,
            organization=access.organization,
            project=access.project,
            target=instance,
            changes={"reverse_dns": [instance.reverse_dns or None, name or None]},
            actor=access.membership.user,
            request=request,
        )
        instance.reverse_dns = name
        instance.save(update_fields=["reverse_dns", "updated_at"])
    return instance


__all__ = [
    "NAME_MAX_LENGTH",
    "ROOT_DISK_MAX_GIB",
    "ComputeRefused",
    "LaunchRequest",
    "PlacementDenied",
    "Problem",
    "QuotaExceeded",
    "instance_action",
    "instance_launch",
    "instance_set_protection",
    "instance_set_reverse_dns",
    "launch_names",
    "launch_problems",
    "validate_launch",
]
