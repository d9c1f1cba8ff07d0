from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class FirewallRuleSet(models.Model):
    """Inbound rules for servers; everything not allowed here is dropped."""

    project = models.ForeignKey("tenancy.Project", on_delete=models.CASCADE, related_name="firewalls")
    name = models.CharField(max_length=80)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="firewall_unique_name_per_project")
        ]

    def __str__(self) -> str:
        return self.name


class FirewallState(models.TextChoices):
    """Whether a server's cloud enforces the rules the portal holds for it (Instance.firewall_*)."""

    UNKNOWN = "", "Not checked yet"  # launched with its rules; the reconciler confirms them
    APPLYING = "applying", "Applying"
    APPLIED = "applied", "Applied"
    FAILED = "failed", "Failed"


class Protocol(models.TextChoices):
    TCP = "tcp", "TCP"
    UDP = "udp", "UDP"
    ICMP = "icmp", "ICMP"


class FirewallRule(models.Model):
    rule_set = models.ForeignKey(FirewallRuleSet, on_delete=models.CASCADE, related_name="rules")
    protocol = models.CharField(max_length=8, choices=Protocol.choices, default=Protocol.TCP)
    port_from = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    port_to = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    source = models.CharField(max_length=64, help_text="CIDR, e.g. 203.0.113.7/32 or 0.0.0.0/0")
    description = models.CharField(max_length=120, blank=True)

    class Meta:
        ordering = ["protocol", "port_from"]
        # The service refuses a second copy of a rule (its fields are stored normalised); these
        # make that hold for every writer. ICMP rules have no ports (NULL, and NULLs never clash
        # in a unique index), hence the second constraint.
        constraints = [
            models.UniqueConstraint(
                fields=["rule_set", "protocol", "port_from", "port_to", "source"],
                condition=~models.Q(protocol="icmp"),
                name="firewall_rule_unique_ports",
            ),
            models.UniqueConstraint(
                fields=["rule_set", "protocol", "source"],
                condition=models.Q(protocol="icmp"),
                name="firewall_rule_unique_icmp",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_protocol_display()} {self.ports} from {self.source}"

    @property
    def ports(self) -> str:
        if self.protocol == Protocol.ICMP or self.port_from is None:
            return "all"
        return str(self.port_from) if self.port_from == self.port_to else f"{self.port_from}-{self.port_to}"
