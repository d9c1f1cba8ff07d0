"""Private networks: a project's own IPv4 network in one zone, and the servers attached to it.
A network's status mirrors what the cloud says; every change goes through an operation
(`Operation.network`, compute/operations/networks.py). Networks are free: nothing is metered."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse


class NetworkStatus(models.TextChoices):
    CREATING = "creating", "Creating"
    AVAILABLE = "available", "Available"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    ERROR = "error", "Error"


class PortStatus(models.TextChoices):
    WAITING = "waiting", "Joins once the server runs"  # chosen in the launch wizard
    ATTACHING = "attaching", "Attaching"
    ATTACHED = "attached", "Attached"
    DETACHING = "detaching", "Detaching"
    DETACHED = "detached", "Detached"
    ERROR = "error", "Failed"


# A port row in these says the server is (or is about to be) on the network.
PORT_PRESENT = frozenset(
    {PortStatus.WAITING, PortStatus.ATTACHING, PortStatus.ATTACHED, PortStatus.DETACHING}
)
NETWORK_TRANSITIONAL = frozenset({NetworkStatus.CREATING, NetworkStatus.DELETING})


class NetworkQuerySet(models.QuerySet["Network"]):
    def existing(self) -> NetworkQuerySet:
        return self.exclude(status=NetworkStatus.DELETED)


class Network(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("tenancy.Project", on_delete=models.PROTECT, related_name="networks")
    name = models.CharField(max_length=63)
    zone = models.ForeignKey("catalog.Zone", on_delete=models.PROTECT, related_name="networks")
    cidr = models.CharField(max_length=18, help_text="An IPv4 private range, e.g. 10.20.0.0/24.")
    status = models.CharField(max_length=16, choices=NetworkStatus.choices, default=NetworkStatus.CREATING)
    backend_id = models.CharField(max_length=128, blank=True, help_text="The network's id in the cloud.")
    fault_message = models.CharField(
        max_length=500, blank=True, help_text="Why it failed, in the customer's words."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = NetworkQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse(
            "compute:network_detail",
            kwargs={
                "org_slug": self.project.organization.slug,
                "project_slug": self.project.slug,
                "network_id": self.pk,
            },
        )

    @property
    def is_transitional(self) -> bool:
        return self.status in NETWORK_TRANSITIONAL


class NetworkPort(models.Model):
    """A server on a network: its address inside it, as the cloud allocated it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    network = models.ForeignKey(Network, on_delete=models.CASCADE, related_name="ports")
    instance = models.ForeignKey("compute.Instance", on_delete=models.CASCADE, related_name="network_ports")
    status = models.CharField(max_length=16, choices=PortStatus.choices, default=PortStatus.ATTACHING)
    address = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)
    fault_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            # One port per server and network; a detached one is history.
            models.UniqueConstraint(
                fields=["network", "instance"],
                condition=~models.Q(status="detached"),
                name="network_port_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.instance_id} on {self.network_id}"
