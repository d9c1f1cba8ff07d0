"""What the OpenStack backend finds or makes on the cloud for a new server: its image, flavor,
network, keypair, security group and boot volume. Everything found by name is checked against what
was asked: a cloud's list filters are hints (a proxy may drop the query, MySQL compares without
case), and trusting them boots the wrong image or reuses another server's firewall."""

from __future__ import annotations

from contextlib import suppress

from openstack import exceptions as sdk_exceptions

from portal.compute.backends.base import Capability, Rejected, ServerSpec
from portal.compute.backends.openstack_mapping import (
    NOT_CONNECTED,
    is_uuid,
    keypair_name,
    plain_fault,
    security_group_name,
    security_group_rules,
)


def image_id(conn, mapping: dict, image: str) -> str:
    """The Glance image to boot for the portal's image: the id the zone maps it to, or the one
    active image named exactly so. Glance's `name=` filter is only a hint (a proxy may drop it,
    MySQL compares names without case): what comes back is checked here, or the wrong image boots."""
    wanted = mapping.get(image, image)
    refused = plain_fault("image not found")
    if is_uuid(wanted):
        wanted = wanted.lower()
        try:
            found = conn.image.get_image(wanted)
        except sdk_exceptions.NotFoundException:
            raise Rejected(
                refused, f"no Glance image with id {wanted} (the zone's mapping of {image!r})"
            ) from None
        if found.id != wanted or found.status != "active":
            raise Rejected(refused, f"Glance image {wanted} is {found.status or 'not readable'}, not active")
        return found.id
    named = [
        i
        for i in conn.image.images(name=wanted, status="active")
        if i.name == wanted and i.status == "active"
    ]
    if len(named) == 1:
        return named[0].id
    mapping = f'map it by id in the zone\'s backend_settings: {{"images": {{"{image}": "<image id>"}}}}'
    if not named:
        raise Rejected(refused, f"no active Glance image named exactly {wanted!r}: upload one, or {mapping}")
    ids = ", ".join(sorted(i.id for i in named))
    raise Rejected(refused, f"{len(named)} active Glance images are named {wanted!r} ({ids}); {mapping}")


def find_flavor(conn, mapping: dict, flavor: str):
    wanted = mapping.get(flavor, flavor)
    try:
        return conn.compute.find_flavor(wanted, ignore_missing=False)
    except sdk_exceptions.NotFoundException as error:
        if error.response is not None:
            raise  # the flavor list itself answered 404: a route or an endpoint is wrong
        raise Rejected(plain_fault("flavor not found"), f"no Nova flavor named {wanted!r}") from None


def boot_volume(spec: ServerSpec, settings: dict, flavor, capabilities: set[Capability]) -> dict | None:
    """The root volume to boot from (its image still to fill in), or None to boot from the
    flavor's own disk. Without Cinder there is no volume: a root disk larger than the flavor's
    is refused in the customer's terms rather than left to fail in Nova."""
    disk = flavor.disk or 0
    if not settings.get("boot_from_volume") and spec.root_disk_gib <= disk:
        return None
    if Capability.LARGE_ROOT_DISK not in capabilities:
        if settings.get("boot_from_volume"):
            raise Rejected(
                NOT_CONNECTED, f"zone {spec.zone}: boot_from_volume is set, but the cloud has no Cinder"
            )
        if not disk:
            raise Rejected(
                "This size boots only from a volume, which this zone cannot make. "
                "Choose another size or zone.",
                f"flavor {flavor.name} has no disk of its own and the cloud has no Cinder",
            )
        raise Rejected(
            f"This size's disk is {disk} GiB in this zone; choose a root disk of at most {disk} GiB.",
            f"root disk of {spec.root_disk_gib} GiB asked, flavor {flavor.name} has {disk} GiB "
            "and the cloud has no Cinder to boot from a larger volume",
        )
    volume = {
        "boot_index": 0,
        "source_type": "image",
        "destination_type": "volume",
        "volume_size": spec.root_disk_gib,
        "delete_on_termination": True,
    }
    if settings.get("volume_type"):
        volume["volume_type"] = settings["volume_type"]
    return volume


def network_id(conn, settings: dict) -> str | None:
    wanted = settings.get("network")
    if not wanted:
        return None
    try:
        return conn.network.find_network(wanted, ignore_missing=False).id
    except sdk_exceptions.NotFoundException as error:
        if error.response is not None:
            raise  # the network list itself answered 404
        raise Rejected(NOT_CONNECTED, f"no Neutron network named {wanted!r}") from None


def keypair(conn, public_key: str) -> str:
    name = keypair_name(public_key)
    try:
        conn.compute.get_keypair(name)
    except sdk_exceptions.NotFoundException:
        # A concurrent launch with the same key may have made it meanwhile.
        with suppress(sdk_exceptions.ConflictException):
            conn.compute.create_keypair(name=name, public_key=public_key.strip())
    return name


def security_group(conn, firewall_rules: tuple[dict, ...]) -> str:
    try:
        rules = security_group_rules(firewall_rules)
    except (KeyError, ValueError) as error:
        raise Rejected(
            "A firewall rule of this server is not valid; check its source address.", str(error)
        ) from None
    name = security_group_name(rules)
    # Checked by name here as well: a Neutron that ignored the filter would hand back any group.
    groups = sorted(
        (g for g in conn.network.security_groups(name=name) if g.name == name),
        key=lambda g: (g.created_at or "", g.id),
    )
    if groups:
        group = groups[0]  # two racing launches may both have made one: the oldest, always
    else:
        group = conn.network.create_security_group(
            name=name, description="Inbound rules of portal servers; managed by the portal, do not edit."
        )
    # Check the rules even on a group found: a launch that died half-way may have left it short.
    fields = ("ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix")
    present = {
        (rule.ether_type, rule.protocol, rule.port_range_min, rule.port_range_max, rule.remote_ip_prefix)
        for rule in conn.network.security_group_rules(security_group_id=group.id, direction="ingress")
        if rule.security_group_id == group.id and rule.direction == "ingress"
    }
    for rule in rules:
        if tuple(rule[field] for field in fields) in present:
            continue
        with suppress(sdk_exceptions.ConflictException):  # added meanwhile
            conn.network.create_security_group_rule(
                security_group_id=group.id,
                direction="ingress",
                ether_type=rule["ethertype"],
                protocol=rule["protocol"],
                port_range_min=rule["port_range_min"],
                port_range_max=rule["port_range_max"],
                remote_ip_prefix=rule["remote_ip_prefix"],
            )
    return group.id
