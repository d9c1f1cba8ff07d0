from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class VolumeStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    IN_USE = "in_use", "Attached"
    DELETED = "deleted", "Deleted"


class VolumeQuerySet(models.QuerySet["Volume"]):
    def existing(self) -> VolumeQuerySet:
        return self.exclude(status=VolumeStatus.DELETED)


class Volume(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("tenancy.Project", on_delete=models.PROTECT, related_name="volumes")
    name = models.CharField(max_length=63)
    zone = models.ForeignKey("catalog.Zone", on_delete=models.PROTECT, related_name="volumes")
    size_gib = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(16384)])
    status = models.CharField(max_length=16, choices=VolumeStatus.choices, default=VolumeStatus.AVAILABLE)
    attached_to = models.ForeignKey(
        "compute.Instance", null=True, blank=True, on_delete=models.SET_NULL, related_name="volumes"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = VolumeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
