"""State of the simulated cloud. It lives in the database so every worker process agrees on it."""

from __future__ import annotations

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
    fault = models.CharField(max_length=300, blank=True)
    metadata = models.JSONField(default=dict)
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


class BackendOrphan(models.Model):
    """A server in the cloud that carries our metadata but has no instance row: for an operator to look at."""

    backend = models.CharField(max_length=32)
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
