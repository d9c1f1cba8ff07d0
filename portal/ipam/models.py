"""The operator's address pools and who holds which address.

One row per holding (`AddressAllocation`), never reused: the history of an address (who had it,
from when to when) stays readable in admin. What makes two live holders of one address impossible
is the database, not the code that picks: a unique constraint on (pool, address) over the rows not
yet released. The picker also locks the pool's row so that concurrent launches queue instead of
colliding, but a second live row for an address is refused by PostgreSQL and SQLite alike, whatever
path wrote it. A released address rests in quarantine (`quarantined_until`) before the picker
offers it again: DNS caches, ARP tables and other customers' firewall rules may still name it."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models

from portal.ipam import addresses


class Family(models.IntegerChoices):
    V4 = 4, "IPv4"
    V6 = 6, "IPv6"


class AddressPool(models.Model):
    zone = models.ForeignKey("catalog.Zone", on_delete=models.PROTECT, related_name="address_pools")
    family = models.PositiveSmallIntegerField(choices=Family.choices, default=Family.V4)
    cidr = models.CharField("network", max_length=49, help_text="e.g. 203.0.113.0/24 or 2001:db8:10::/64.")
    gateway = models.GenericIPAddressField(
        null=True, blank=True, help_text="Inside the network; never handed to a server."
    )
    reserved = models.TextField(
        "reserved ranges",
        blank=True,
        help_text="Never handed out. One a line: an address, a range first-last "
        "(203.0.113.2-203.0.113.9) or a network (203.0.113.240/28); # starts a comment.",
    )
    quarantine_minutes = models.PositiveIntegerField(
        default=24 * 60,
        help_text="How long a returned address rests before another server gets it (1440: a day).",
    )
    is_active = models.BooleanField(
        default=True, help_text="Inactive pools hand out nothing; their addresses stay with their servers."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["zone__code", "family", "cidr"]
        verbose_name = "address pool"
        constraints = [
            models.CheckConstraint(condition=models.Q(family__in=[4, 6]), name="ipam_pool_family"),
            models.UniqueConstraint(fields=["zone", "cidr"], name="ipam_pool_unique_network"),
        ]

    def __str__(self) -> str:
        return f"{self.cidr} ({self.get_family_display()})"

    @property
    def network(self) -> addresses.Network:
        return ipaddress.ip_network(self.cidr)

    @property
    def quarantine(self) -> timedelta:
        return timedelta(minutes=self.quarantine_minutes)

    def never_handed_out(self) -> list[addresses.Range]:
        ranges, _ = addresses.parse_reserved(self.reserved, self.network)
        return addresses.never_handed_out(self.network, self.gateway, ranges)

    def usable_count(self) -> int:
        return addresses.usable_count(self.network, self.never_handed_out())

    def clean(self) -> None:
        """Every problem at once, each next to its field, in plain words."""
        if not (self.cidr or "").strip():
            return  # "This field cannot be blank." says it; nothing else can be checked without it
        errors: dict[str, list[str]] = {}
        network, problem = addresses.parse_network(self.cidr, self.family)
        if problem:
            errors.setdefault("cidr", []).append(problem)
        if network is not None:
            self.cidr = str(network)  # one spelling: 2001:DB8::/64 and 2001:db8::/64 are one pool
            errors |= self._network_problems(network)
        if errors:
            raise ValidationError(errors)

    def _network_problems(self, network: addresses.Network) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if self.gateway:
            try:
                gateway = ipaddress.ip_address(self.gateway)
            except ValueError:
                gateway = None
                errors["gateway"] = [f"“{self.gateway}” is not an address."]
            if gateway is not None and gateway not in network:
                errors["gateway"] = [f"The gateway {gateway} is not inside {network}."]
            elif gateway is not None and network.prefixlen < addresses.MAX_PREFIX[network.version] - 1:
                if gateway == network.network_address:
                    errors["gateway"] = [f"{gateway} is the network's own address, not a gateway."]
                elif network.version == 4 and gateway == network.broadcast_address:
                    errors["gateway"] = [f"{gateway} is the network's broadcast address, not a gateway."]
            if gateway is not None and "gateway" not in errors:
                self.gateway = str(gateway)
        _, reserved_problems = addresses.parse_reserved(self.reserved, network)
        if reserved_problems:
            errors["reserved"] = reserved_problems
        if self.zone_id:
            others = AddressPool.objects.filter(zone_id=self.zone_id).exclude(pk=self.pk)
            for other in others.only("cidr", "family"):
                other_network = ipaddress.ip_network(other.cidr)
                if other_network.version == network.version and other_network.overlaps(network):
                    errors.setdefault("cidr", []).append(
                        f"{network} overlaps the pool {other_network} of this zone."
                    )
        if self.pk:
            before = AddressPool.objects.filter(pk=self.pk).values_list("cidr", flat=True).first()
            held = self.allocations.filter(released_at=None)
            if before is not None and before != str(network) and held.exists():
                errors.setdefault("cidr", []).append(
                    "Servers hold addresses of this pool: its network can't change while they do."
                )
        return errors


class AllocationQuerySet(models.QuerySet):
    def live(self) -> AllocationQuerySet:
        return self.filter(released_at=None)

    def busy(self, now) -> AllocationQuerySet:
        """Held by a server, or returned and still resting in quarantine."""
        return self.filter(models.Q(released_at=None) | models.Q(quarantined_until__gt=now))


class AddressAllocation(models.Model):
    """One server holding one address, from `allocated_at` until `released_at`."""

    pool = models.ForeignKey(AddressPool, on_delete=models.PROTECT, related_name="allocations")
    family = models.PositiveSmallIntegerField(choices=Family.choices)  # the pool's, for the constraint
    address = models.GenericIPAddressField()
    instance = models.ForeignKey(
        "compute.Instance",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="address_allocations",
    )
    holder_name = models.CharField(max_length=63, blank=True, help_text="The server's name when it got it.")
    allocated_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)
    quarantined_until = models.DateTimeField(null=True, blank=True)

    objects = AllocationQuerySet.as_manager()

    class Meta:
        ordering = ["-allocated_at"]
        constraints = [
            # Two live holders of one address: impossible, whatever wrote the rows.
            models.UniqueConstraint(
                fields=["pool", "address"],
                condition=models.Q(released_at__isnull=True),
                name="ipam_one_live_holder_per_address",
            ),
            # A server holds at most one address of each family.
            models.UniqueConstraint(
                fields=["instance", "family"],
                condition=models.Q(released_at__isnull=True),
                name="ipam_one_live_address_per_family",
            ),
        ]
        indexes = [models.Index(fields=["pool", "quarantined_until"])]

    def __str__(self) -> str:
        return self.address


class ExhaustionAlert(models.Model):
    """A zone ran out of addresses of one family and a launch was refused: for an operator to act
    on (add a pool, widen one, shorten the quarantine). One open alert per zone and family; later
    refusals count on it until an operator marks it resolved."""

    zone = models.ForeignKey("catalog.Zone", on_delete=models.CASCADE, related_name="+")
    family = models.PositiveSmallIntegerField(choices=Family.choices)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    refusals = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_at"]
        verbose_name = "address exhaustion alert"
        constraints = [
            models.UniqueConstraint(
                fields=["zone", "family"],
                condition=models.Q(resolved_at__isnull=True),
                name="ipam_one_open_alert",
            )
        ]

    def __str__(self) -> str:
        return f"No IPv{self.family} addresses left in {self.zone}"
