"""State of the simulated cloud. It lives in the database so every worker process agrees on it."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SimulatedServer(models.Model):
    backend_id = models.CharField(max_length=64, unique=True)
    # Like a real cloud's metadata, not unique: a second create with the same key makes a second
    # server. That the portal never asks twice is what the fault tests check.
    idempotency_key = models.CharField(max_length=64, db_index=True)
    zone_code = models.CharField(max_length=24, db_index=True)
    name = models.CharField(max_length=63)
    vcpus = models.PositiveIntegerField()
    ram_gib = models.PositiveIntegerField()
    flavor_code = models.CharField(max_length=32)
    state = models.CharField(max_length=16)
    target_state = models.CharField(max_length=16, blank=True)
    transition_until = models.DateTimeField(null=True, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    address6 = models.GenericIPAddressField(null=True, blank=True)  # only when the portal's pools give one
    fault = models.CharField(max_length=300, blank=True)
    root_disk_gib = models.PositiveIntegerField(default=0)
    image_ref = models.CharField(max_length=64, blank=True, help_text="The server snapshot it boots from.")
    metadata = models.JSONField(default=dict)
    # The inbound rules the cloud enforces (simulated_firewall.py); None: none of the portal's.
    firewall_rules = models.JSONField(null=True, blank=True)
    # The guest's /etc/shadow, as far as the portal can change it: {user: Django password hash}
    # set by `set_password`; the serial console's login checks them (simulated_console.py).
    password_hashes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted = models.BooleanField(default=False, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["zone_code", "address"],
                condition=models.Q(deleted=False),
                name="simulated_address_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class SimulatedVolume(models.Model):
    """A volume of the simulated cloud. Like a server, a transition lands when its time is up."""

    backend_id = models.CharField(max_length=64, unique=True)
    idempotency_key = models.CharField(max_length=64, db_index=True)  # not unique, as in a cloud
    zone_code = models.CharField(max_length=24, db_index=True)
    name = models.CharField(max_length=63)
    size_gib = models.PositiveIntegerField()
    state = models.CharField(max_length=16)
    target_state = models.CharField(max_length=16, blank=True)
    transition_until = models.DateTimeField(null=True, blank=True)
    attached_to = models.CharField(max_length=64, blank=True, help_text="The server's backend id.")
    device = models.CharField(max_length=32, blank=True)
    fault = models.CharField(max_length=300, blank=True)
    metadata = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted = models.BooleanField(default=False, db_index=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class SimulatedSnapshot(models.Model):
    """A snapshot of a simulated server (an image it boots from: `image_ref`) or volume."""

    backend_id = models.CharField(max_length=64, unique=True)
    idempotency_key = models.CharField(max_length=64, db_index=True)
    zone_code = models.CharField(max_length=24, db_index=True)
    name = models.CharField(max_length=63)
    source = models.CharField(max_length=8)  # server or volume
    source_id = models.CharField(max_length=64)
    size_gib = models.PositiveIntegerField()
    min_disk_gib = models.PositiveIntegerField(default=0)
    image_ref = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16)
    target_state = models.CharField(max_length=16, blank=True)
    transition_until = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted = models.BooleanField(default=False, db_index=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class SimulatedZone(models.Model):
    """A simulated zone's size, fixed when it is first used (from the catalog's free capacity then)."""

    zone_code = models.CharField(max_length=24, unique=True)
    total_vcpus = models.PositiveIntegerField()
    total_ram_gib = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.zone_code}: {self.total_vcpus} vCPU, {self.total_ram_gib} GiB"


class SimulatedKnobs(models.Model):
    """Fault injection for the simulated backend, editable in admin (one row; settings give defaults)."""

    transient_error_rate = models.FloatField(
        default=0.0, help_text="0 to 1: share of calls that fail and should be retried."
    )
    slow_call_seconds = models.FloatField(default=0.0, help_text="Added to every call.")
    boot_seconds = models.FloatField(default=4.0)
    action_seconds = models.FloatField(default=2.0, help_text="Stop, start, reboot, resize.")
    fail_marker = models.CharField(
        max_length=32, default="fail", blank=True, help_text="A server whose name contains this never boots."
    )

    class Meta:
        verbose_name = "simulated backend settings"
        verbose_name_plural = "simulated backend settings"

    def __str__(self) -> str:
        return "Simulated backend settings"

    @classmethod
    def from_settings(cls) -> SimulatedKnobs:
        """The knobs in effect while no row is saved: settings.SIMULATED_BACKEND (the environment)."""
        defaults = settings.SIMULATED_BACKEND
        return cls(
            transient_error_rate=defaults.get("transient_error_rate", 0.0),
            slow_call_seconds=defaults.get("slow_call_seconds", 0.0),
            boot_seconds=defaults.get("boot_seconds", 4.0),
            action_seconds=defaults.get("action_seconds", 2.0),
            fail_marker=defaults.get("fail_marker", "fail"),
        )


class BackendOrphan(models.Model):
    """A server or volume in the cloud that carries our metadata but has no row in the portal: for
    an operator to look at."""

    backend = models.CharField(max_length=32)
    kind = models.CharField(max_length=8, default="server", help_text="server or volume")
    zone_code = models.CharField(max_length=24)
    backend_id = models.CharField(max_length=128)
    idempotency_key = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=63, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    resolved = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["backend", "backend_id"], name="orphan_unique")]

    def __str__(self) -> str:
        return f"{self.backend}:{self.backend_id}"


class SimulatedNetwork(models.Model):
    """A private network of the simulated cloud: one subnet (`cidr`) and its ports, each a server's
    backend id and the address the cloud gave it (`ports`), changed under the row's lock."""

    backend_id = models.CharField(max_length=64, unique=True)
    idempotency_key = models.CharField(max_length=64, db_index=True)  # not unique, as in a cloud
    zone_code = models.CharField(max_length=24, db_index=True)
    name = models.CharField(max_length=63)
    cidr = models.CharField(max_length=18)
    state = models.CharField(max_length=16)
    ports = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted = models.BooleanField(default=False, db_index=True)

    def __str__(self) -> str:
        return f"{self.name} {self.cidr}"
