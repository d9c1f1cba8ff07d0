"""Writes for a project's SSH keys, firewall rule sets and volumes.

Like portal.compute.services: each takes `access`, checks the role, validates, changes rows under
a lock on the project row (the same lock launches take, so quota and "is it in use?" answers
cannot race), records an audit event, and raises ComputeRefused, QuotaExceeded or PlacementDenied.

Two limits of this version:
- Volumes are portal records only: creating, attaching, detaching and deleting one calls no
  compute backend. The rows, quota, placement decisions and audit trail are real; the disks are not.
- Firewall rules reach a server when it is launched (portal.compute.runner passes them to the
  backend); changing a rule set does not update servers that already run with it. The firewall
  page says so.
"""

from __future__ import annotations

import ipaddress
import re

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.catalog.models import Zone
from portal.compute.models import (
    FirewallRule,
    FirewallRuleSet,
    Instance,
    InstanceStatus,
    Protocol,
    SshKey,
    Volume,
    VolumeStatus,
)
from portal.compute.presets import presets_for
from portal.compute.quota import QuotaExceeded, check_quota
from portal.compute.services import ComputeRefused
from portal.compute.sshkeys import InvalidKey, parse_public_key
from portal.metering.segments import sync_volume
from portal.residency.placement import PlacementDenied, placement_decision
from portal.residency.services import record_placement_denied
from portal.tenancy.access import Access, Perm
from portal.tenancy.models import Project

# Same rule as server names: volumes may become device labels on the backend one day.
VOLUME_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
VOLUME_NAME_RULE = (
    "Use lower-case letters, digits and hyphens (not at the start or end), at most 63 characters."
)
VOLUME_MAX_GIB = 16384
# Names people type for keys and firewalls: anything printable, no control characters.
LABEL_RE = re.compile(r"^[^\x00-\x1f\x7f]+$")
ATTACHABLE = frozenset({InstanceStatus.RUNNING, InstanceStatus.STOPPED})


def _lock_project(access: Access) -> Project:
    return Project.objects.select_for_update().get(pk=access.project.pk)


def _audit(access: Access, action: AuditAction, target, changes: dict, request: HttpRequest | None) -> None:
    audit_record(
        action=action,
        organization=access.organization,
        project=access.project,
        target=target,
        changes=changes,
        actor=access.membership.user,
        request=request,
    )


def _label(value: str, *, what: str, max_length: int) -> str:
    value = (value or "").strip()
    if not value:
        raise ComputeRefused(f"Give the {what} a name.", "name")
    if len(value) > max_length:
        raise ComputeRefused(f"The name can be at most {max_length} characters.", "name")
    if not LABEL_RE.match(value):
        raise ComputeRefused("The name cannot contain line breaks or control characters.", "name")
    return value


# --- SSH keys ---------------------------------------------------------------------------------


KEY_TYPE_LABELS = {"ssh-ed25519": "Ed25519", "ssh-rsa": "RSA"}


def key_type_label(key_type: str) -> str:
    return KEY_TYPE_LABELS.get(key_type, "ECDSA" if key_type.startswith("ecdsa-") else key_type)


def ssh_key_add(*, access: Access, name: str, public_key: str, request: HttpRequest | None = None) -> SshKey:
    """Save a public key to the project. The name defaults to the key's comment.

    Refuses (ComputeRefused naming the field) a key that does not parse, and a key or a name
    the project already has: the message says which key it duplicates.
    """
    access.require(Perm.RESOURCE_CREATE)
    try:
        parsed = parse_public_key(public_key)
    except InvalidKey as error:
        raise ComputeRefused(str(error), "public_key") from None
    name = _label(name or parsed.comment[:80] or key_type_label(parsed.key_type), what="key", max_length=80)
    with transaction.atomic():
        project = _lock_project(access)
        same_key = SshKey.objects.filter(project=project, fingerprint=parsed.fingerprint).first()
        if same_key is not None:
            raise ComputeRefused(
                f"This key is already in the project as “{same_key.name}” ({parsed.fingerprint}).",
                "public_key",
                409,
            )
        if SshKey.objects.filter(project=project, name=name).exists():
            raise ComputeRefused(
                f"The project already has a key named “{name}”; choose another name.", "name", 409
            )
        try:
            with transaction.atomic():
                key = SshKey.objects.create(
                    project=project,
                    name=name,
                    public_key=parsed.normalized,
                    key_type=parsed.key_type,
                    bits=parsed.bits,
                    fingerprint=parsed.fingerprint,
                    created_by=access.membership.user,
                )
        except IntegrityError:  # the wizard saves keys without the project lock
            raise ComputeRefused(
                "This key or name was just added to the project.", "public_key", 409
            ) from None
        _audit(
            access,
            AuditAction.SSH_KEY_ADDED,
            key,
            {
                "fingerprint": [None, key.fingerprint],
                "type": [None, f"{key_type_label(key.key_type)} {key.bits}"],
            },
            request,
        )
    return key


def ssh_key_delete(*, access: Access, key: SshKey, request: HttpRequest | None = None) -> None:
    """Remove a key from the project. Servers that already have it keep it in authorized_keys."""
    access.require(Perm.RESOURCE_OPERATE)
    with transaction.atomic():
        _lock_project(access)
        key = SshKey.objects.filter(project=access.project, pk=key.pk).first()
        if key is None:
            return  # removed meanwhile: nothing left to do
        _audit(access, AuditAction.SSH_KEY_DELETED, key, {"fingerprint": [key.fingerprint, None]}, request)
        key.delete()


# --- Firewalls --------------------------------------------------------------------------------


def preset_rule_set_name(preset_key: str, client_ip: str | None) -> str:
    """The name a preset's rule set gets; the launch wizard's presets use the same names."""
    preset = presets_for(client_ip)[preset_key]
    if preset_key == "ssh-my-ip":
        return f"ssh-from-{preset.rules[0][3].split('/')[0]}"
    return "web-and-ssh"


def firewall_create(
    *,
    access: Access,
    name: str,
    preset: str | None = None,
    client_ip: str | None = None,
    request: HttpRequest | None = None,
) -> FirewallRuleSet:
    """A new rule set, empty (drops all inbound traffic) or filled from a preset.

    Without a name, a preset's rule set is named after it (as in the launch wizard).
    """
    access.require(Perm.RESOURCE_CREATE)
    presets = presets_for(client_ip)
    chosen = None
    if preset:
        chosen = presets.get(preset)
        if chosen is None:
            raise ComputeRefused(
                "That preset is not available"
                + (" (your IP address is not known to the portal)." if preset == "ssh-my-ip" else "."),
                "preset",
            )
        if not (name or "").strip():
            name = preset_rule_set_name(preset, client_ip)
    name = _label(name, what="firewall", max_length=80)
    with transaction.atomic():
        project = _lock_project(access)
        if FirewallRuleSet.objects.filter(project=project, name=name).exists():
            raise ComputeRefused(f"The project already has a firewall named “{name}”.", "name", 409)
        rule_set = FirewallRuleSet.objects.create(
            project=project, name=name, created_by=access.membership.user
        )
        rules = []
        if chosen is not None:
            rules = FirewallRule.objects.bulk_create(
                FirewallRule(rule_set=rule_set, protocol=p, port_from=a, port_to=b, source=src, description=d)
                for p, a, b, src, d in chosen.rules
            )
        _audit(
            access,
            AuditAction.FIREWALL_CREATED,
            rule_set,
            {"rules": [None, "; ".join(str(r) for r in rules) or "none (drops all inbound traffic)"]},
            request,
        )
    return rule_set


def normalise_source(source: str) -> str:
    """A CIDR as the backend wants it: 203.0.113.7 → 203.0.113.7/32, 10.1.2.3/8 → 10.0.0.0/8."""
    text = (source or "").strip()
    if not text:
        raise ComputeRefused(
            "Enter where traffic may come from, e.g. 203.0.113.7/32, or 0.0.0.0/0 for anywhere.", "source"
        )
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ComputeRefused(
            f"“{text[:64]}” is not an IPv4 or IPv6 address or network; write it like 203.0.113.0/24 or 2001:db8::/32.",
            "source",
        ) from None


def validate_ports(
    protocol: str, port_from: int | None, port_to: int | None
) -> tuple[int | None, int | None]:
    if protocol == Protocol.ICMP:
        if port_from is not None or port_to is not None:
            raise ComputeRefused("ICMP has no ports: leave both port fields empty.", "port_from")
        return None, None
    if port_from is None:
        raise ComputeRefused(f"{Protocol(protocol).label} rules need a port, e.g. 22 for SSH.", "port_from")
    if port_to is None:
        port_to = port_from
    for field, port in (("port_from", port_from), ("port_to", port_to)):
        if not 1 <= port <= 65535:
            raise ComputeRefused("Ports are numbers from 1 to 65535.", field)
    if port_from > port_to:
        raise ComputeRefused(
            f"The range {port_from} to {port_to} runs backwards; put the lower port first.", "port_to"
        )
    return port_from, port_to


def _locked_rule_set(access: Access, rule_set: FirewallRuleSet) -> FirewallRuleSet:
    locked = (
        FirewallRuleSet.objects.select_for_update().filter(project=access.project, pk=rule_set.pk).first()
    )
    if locked is None:
        raise ComputeRefused(f"The firewall “{rule_set.name}” has been deleted.", status=409)
    return locked


def firewall_rule_add(
    *,
    access: Access,
    rule_set: FirewallRuleSet,
    protocol: str,
    port_from: int | None,
    port_to: int | None,
    source: str,
    description: str = "",
    request: HttpRequest | None = None,
) -> FirewallRule:
    """Allow one kind of inbound traffic. Adding a rule the set already has changes nothing."""
    access.require(Perm.RESOURCE_OPERATE)
    if protocol not in Protocol.values:
        raise ComputeRefused("Choose TCP, UDP or ICMP.", "protocol")
    port_from, port_to = validate_ports(protocol, port_from, port_to)
    source = normalise_source(source)
    description = (description or "").strip()
    if len(description) > 120:
        raise ComputeRefused("Keep the description to 120 characters.", "description")
    with transaction.atomic():
        rule_set = _locked_rule_set(access, rule_set)
        existing = rule_set.rules.filter(
            protocol=protocol, port_from=port_from, port_to=port_to, source=source
        ).first()
        if existing is not None:
            return existing
        rule = FirewallRule.objects.create(
            rule_set=rule_set,
            protocol=protocol,
            port_from=port_from,
            port_to=port_to,
            source=source,
            description=description,
        )
        _audit(access, AuditAction.FIREWALL_UPDATED, rule_set, {"rule added": [None, str(rule)]}, request)
    return rule


def firewall_rule_delete(*, access: Access, rule: FirewallRule, request: HttpRequest | None = None) -> None:
    access.require(Perm.RESOURCE_OPERATE)
    with transaction.atomic():
        rule_set = _locked_rule_set(access, rule.rule_set)
        rule = rule_set.rules.filter(pk=rule.pk).first()
        if rule is None:
            return
        _audit(access, AuditAction.FIREWALL_UPDATED, rule_set, {"rule removed": [str(rule), None]}, request)
        rule.delete()


def servers_using(rule_set: FirewallRuleSet) -> list[Instance]:
    return list(rule_set.instances.visible().order_by("name"))


def firewall_delete(*, access: Access, rule_set: FirewallRuleSet, request: HttpRequest | None = None) -> None:
    """Delete a rule set no server uses (terminated servers do not count)."""
    access.require(Perm.RESOURCE_OPERATE)
    with transaction.atomic():
        _lock_project(access)  # launches take it too: no server can pick this set up meanwhile
        rule_set = FirewallRuleSet.objects.filter(project=access.project, pk=rule_set.pk).first()
        if rule_set is None:
            return
        using = servers_using(rule_set)
        if using:
            names = ", ".join(i.name for i in using[:5]) + (
                f" and {len(using) - 5} more" if len(using) > 5 else ""
            )
            raise ComputeRefused(
                f"“{rule_set.name}” is still used by {names}. "
                "It can be deleted once no server uses it (terminated servers do not count).",
                status=409,
            )
        _audit(
            access, AuditAction.FIREWALL_DELETED, rule_set, {"rules": [rule_set.rules.count(), None]}, request
        )
        rule_set.delete()


# --- Volumes ----------------------------------------------------------------------------------


def volume_create(
    *, access: Access, name: str, zone: Zone, size_gib: int, request: HttpRequest | None = None
) -> Volume:
    """A new, unattached volume in `zone`. Raises ComputeRefused, QuotaExceeded or PlacementDenied
    (audited). The policy is checked before the zone's status, so a forbidden zone is always audited."""
    access.require(Perm.RESOURCE_CREATE)
    name = (name or "").strip()
    if not VOLUME_NAME_RE.match(name) or len(name) > 63:
        raise ComputeRefused(VOLUME_NAME_RULE, "name")
    if not 1 <= size_gib <= VOLUME_MAX_GIB:
        raise ComputeRefused(f"A volume is 1 to {VOLUME_MAX_GIB} GiB.", "size_gib")
    if not zone.region.is_active:
        raise ComputeRefused("Choose one of the zones listed.", "zone")
    with transaction.atomic():
        project = _lock_project(access)
        decision = placement_decision(project, zone, lock=True)
        if decision.allowed:
            if not zone.accepts_launches:
                raise ComputeRefused(
                    f"{zone.code} is {zone.get_status_display().lower()} right now; choose another zone.",
                    "zone",
                    409,
                )
            if Volume.objects.existing().filter(project=project, name=name).exists():
                raise ComputeRefused(f"The project already has a volume named “{name}”.", "name", 409)
            check_quota(project, volume_gib=size_gib)
            volume = Volume.objects.create(
                project=project, name=name, zone=zone, size_gib=size_gib, created_by=access.membership.user
            )
            sync_volume(volume)
            _audit(
                access,
                AuditAction.VOLUME_CREATED,
                volume,
                {"size": [None, f"{size_gib} GiB"], "zone": [None, zone.code]},
                request,
            )
            return volume
    record_placement_denied(
        access=access,
        zone=zone,
        attempted=f"create volume {name} ({size_gib} GiB) in {zone.code}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)


def _locked_volume(access: Access, volume: Volume) -> Volume:
    locked = (
        Volume.objects.existing().select_for_update().filter(project=access.project, pk=volume.pk).first()
    )
    if locked is None:
        raise ComputeRefused(f"Volume {volume.name} has been deleted.", status=409)
    return locked


def volume_attach(
    *, access: Access, volume: Volume, instance: Instance, request: HttpRequest | None = None
) -> Volume:
    """Attach to a running or stopped server in the same zone. Attaching it again to the same
    server changes nothing. The placement decision applies: a zone the policy no longer allows
    takes no new attachments."""
    access.require(Perm.RESOURCE_OPERATE)
    with transaction.atomic():
        project = _lock_project(access)
        volume = _locked_volume(access, volume)
        instance = (
            Instance.objects.select_for_update()
            .filter(project=project, pk=instance.pk)
            .exclude(status=InstanceStatus.TERMINATED)
            .first()
        )
        if instance is None:
            raise ComputeRefused("Choose one of the project's servers.", "instance")
        if volume.status == VolumeStatus.IN_USE:
            if volume.attached_to_id == instance.pk:
                return volume
            attached = (
                Instance.objects.filter(pk=volume.attached_to_id).values_list("name", flat=True).first()
            )
            raise ComputeRefused(f"{volume.name} is attached to {attached}: detach it first.", status=409)
        if instance.zone_id != volume.zone_id:
            raise ComputeRefused(
                f"{volume.name} is in {volume.zone.code} and {instance.name} in {instance.zone.code}: "
                "a volume can only be attached to a server in its own zone.",
                "instance",
                409,
            )
        if instance.status not in ATTACHABLE:
            raise ComputeRefused(
                f"{instance.name} is {instance.get_status_display().lower()}: volumes can be attached "
                "to running or stopped servers.",
                "instance",
                409,
            )
        decision = placement_decision(project, volume.zone, lock=True)
        if decision.allowed:
            volume.status = VolumeStatus.IN_USE
            volume.attached_to = instance
            volume.save(update_fields=["status", "attached_to"])
            _audit(access, AuditAction.VOLUME_ATTACHED, volume, {"server": [None, instance.name]}, request)
            return volume
    record_placement_denied(
        access=access,
        zone=volume.zone,
        attempted=f"attach volume {volume.name} to {instance.name}",
        reason=decision.reason,
        request=request,
    )
    raise PlacementDenied(decision)


@transaction.atomic
def volume_detach(*, access: Access, volume: Volume, request: HttpRequest | None = None) -> Volume:
    """Detach from its server (also from a terminated one). An unattached volume is left as it is."""
    access.require(Perm.RESOURCE_OPERATE)
    _lock_project(access)
    volume = _locked_volume(access, volume)
    if volume.status != VolumeStatus.IN_USE:
        return volume
    server = Instance.objects.filter(pk=volume.attached_to_id).values_list("name", flat=True).first()
    volume.status = VolumeStatus.AVAILABLE
    volume.attached_to = None
    volume.save(update_fields=["status", "attached_to"])
    _audit(access, AuditAction.VOLUME_DETACHED, volume, {"server": [server, None]}, request)
    return volume


@transaction.atomic
def volume_delete(*, access: Access, volume: Volume, request: HttpRequest | None = None) -> Volume:
    """Mark the volume deleted (the row stays for the audit trail and usage history)."""
    access.require(Perm.RESOURCE_OPERATE)
    _lock_project(access)
    volume = _locked_volume(access, volume)
    if volume.status == VolumeStatus.IN_USE:
        server = Instance.objects.filter(pk=volume.attached_to_id).values_list("name", flat=True).first()
        raise ComputeRefused(f"{volume.name} is attached to {server}: detach it first.", status=409)
    volume.status = VolumeStatus.DELETED
    volume.deleted_at = timezone.now()
    volume.save(update_fields=["status", "deleted_at"])
    sync_volume(volume)
    _audit(access, AuditAction.VOLUME_DELETED, volume, {"size": [f"{volume.size_gib} GiB", None]}, request)
    return volume


__all__ = [
    "ComputeRefused",
    "PlacementDenied",
    "QuotaExceeded",
    "firewall_create",
    "firewall_delete",
    "firewall_rule_add",
    "firewall_rule_delete",
    "key_type_label",
    "normalise_source",
    "preset_rule_set_name",
    "servers_using",
    "ssh_key_add",
    "ssh_key_delete",
    "volume_attach",
    "volume_create",
    "volume_delete",
    "volume_detach",
]
