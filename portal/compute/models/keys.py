from __future__ import annotations

from django.conf import settings
from django.db import models


class SshKey(models.Model):
    """A public key customers put on their servers; parsed and checked by portal.compute.sshkeys."""

    project = models.ForeignKey("tenancy.Project", on_delete=models.CASCADE, related_name="ssh_keys")
    name = models.CharField(max_length=80)
    public_key = models.TextField()
    key_type = models.CharField(max_length=32)
    bits = models.PositiveIntegerField()
    fingerprint = models.CharField(max_length=80, help_text="SHA256, as `ssh-keygen -lf` prints it.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "fingerprint"], name="sshkey_unique_per_project"),
            models.UniqueConstraint(fields=["project", "name"], name="sshkey_unique_name_per_project"),
        ]

    def __str__(self) -> str:
        return self.name
