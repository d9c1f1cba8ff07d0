"""Volumes: disks in a zone's cloud that outlive servers. Their status mirrors what the cloud
says; every change goes through an operation (`Operation.volume`, compute/operations/volumes.py)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse


class VolumeStatus(models.TextChoices):
    CREATING = "creating", "Creating"
    AVAILABLE = "available", "Available"
    ATTACHING = "attaching", "Attaching"
    IN_USE = "in_use", "Attached"
    DETACHING = "detaching", "Detaching"
    EXTENDING = "extending", "Extending"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    ERROR = "error", "Error"


V = VolumeStatus
# A request is under way: the page polls, and no other request is taken.
VOLUME_TRANSITIONAL = frozenset({V.CREATING, V.ATTACHING, V.DETACHING, V.EXTENDING, V.DELETING})
# Settled states the cloud's answer can change (the reconciler compares them).
VOLUME_SETTLED = frozenset({V.AVAILABLE, V.IN_USE})


class VolumeQuerySet(models.QuerySet["Volume"]):
    def existing(self) -> VolumeQuerySet:
        return self.exclude(status=VolumeStatus.DELETED)

    def holding_quota(self) -> VolumeQuerySet:
        # Like servers: an error row holds quota while a volume exists in the cloud for it.
        return self.existing().exclude(status=VolumeStatus.ERROR, backend_id="")


class Volume(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("tenancy.Project", on_delete=models.PROTECT, related_name="volumes")
    name = models.CharField(max_length=63)
    zone = models.ForeignKey("catalog.Zone", on_delete=models.PROTECT, related_name="volumes")
    size_gib = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(16384)])
    status = models.CharField(max_length=16, choices=VolumeStatus.choices, default=VolumeStatus.CREATING)
    backend_id = models.CharField(max_length=128, blank=True, help_text="The volume's id in the cloud.")
    attached_to = models.ForeignKey(
        "compute.Instance", null=True, blank=True, on_delete=models.SET_NULL, related_name="volumes"
    )
    pending_server = models.ForeignKey(
        "compute.Instance",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pending_volumes",
        help_text="Chosen in the launch wizard: attached to this server once both are ready.",
    )
    device = models.CharField(
        max_length=64, blank=True, help_text="The device the server sees (e.g. /dev/vdb), as the cloud says."
    )
    fault_message = models.CharField(
        max_length=500, blank=True, help_text="Why it failed, in the customer's words."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = VolumeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse(
            "compute:volume_detail",
            kwargs={
                "org_slug": self.project.organization.slug,
                "project_slug": self.project.slug,
                "volume_id": self.pk,
            },
        )

    @property
    def is_transitional(self) -> bool:
        return self.status in VOLUME_TRANSITIONAL

    @property
    def device_label(self) -> str:
        """The device to use inside the server: the cloud's name, or the stable by-id path when
        the cloud does not say (virtio disks carry the first 20 characters of the volume's id)."""
        return self.device or f"/dev/disk/by-id/virtio-{self.backend_id[:20]}"
