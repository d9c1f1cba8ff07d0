from __future__ import annotations

from django.conf import settings
from django.db import models

from portal.catalog.models import Certification, Jurisdiction, Region


class ResidencyPolicy(models.Model):
    """Where an organization's (or one project's) resources may be placed.

    Empty jurisdictions or regions mean "any"; certifications are all required. A project's
    policy applies on top of its organization's, so it can only narrow it.
    """

    organization = models.ForeignKey(
        "tenancy.Organization", on_delete=models.CASCADE, related_name="residency_policies"
    )
    project = models.OneToOneField(
        "tenancy.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="residency_policy"
    )
    name = models.CharField(
        max_length=80, blank=True, help_text='A short name people recognise, e.g. "EU only".'
    )
    jurisdictions = models.ManyToManyField(Jurisdiction, blank=True, related_name="+")
    regions = models.ManyToManyField(Region, blank=True, related_name="+")
    certifications = models.ManyToManyField(Certification, blank=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "residency policies"
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(project__isnull=True),
                name="residency_one_policy_per_organization",
            )
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def scope(self) -> str:
        return "project" if self.project_id else "organization"

    @property
    def label(self) -> str:
        return f"{self.scope} policy '{self.name}'" if self.name else f"{self.scope} policy"
