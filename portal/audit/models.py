from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditAction(models.TextChoices):
    ORG_CREATED = "organization.created", "Organization created"
    ORG_UPDATED = "organization.updated", "Organization updated"
    PROJECT_CREATED = "project.created", "Project created"
    PROJECT_UPDATED = "project.updated", "Project updated"
    PROJECT_DELETED = "project.deleted", "Project deleted"
    QUOTA_CHANGED = "project.quota_changed", "Quota changed"
    MEMBER_ADDED = "member.added", "Member joined"
    MEMBER_ROLE_CHANGED = "member.role_changed", "Member role changed"
    MEMBER_REMOVED = "member.removed", "Member removed"
    MEMBER_LEFT = "member.left", "Member left"
    INVITATION_SENT = "invitation.sent", "Invitation sent"
    INVITATION_RESENT = "invitation.resent", "Invitation resent"
    INVITATION_REVOKED = "invitation.revoked", "Invitation revoked"
    INVITATION_ACCEPTED = "invitation.accepted", "Invitation accepted"
    POLICY_CHANGED = "residency.policy_changed", "Residency policy changed"
    PLACEMENT_DENIED = "residency.placement_denied", "Placement denied"
    INSTANCES_LAUNCHED = "instance.launched", "Servers launched"
    INSTANCE_ACTION = "instance.action", "Server action requested"
    INSTANCE_PROTECTION = "instance.protection_changed", "Termination protection changed"
    INSTANCE_REVERSE_DNS = "instance.reverse_dns", "Reverse DNS changed"
    INSTANCE_CHANGED_OUTSIDE = "instance.changed_outside", "Server changed outside the portal"
    INSTANCE_FIREWALL = "instance.firewall_changed", "Server firewall changed"
    INSTANCE_PASSWORD_RESET = "instance.password_reset", "Root password reset"
    CONSOLE_OPENED = "console.opened", "Serial console opened"
    CONSOLE_CLOSED = "console.closed", "Serial console closed"
    REMOTE_CONSOLE_ISSUED = "console.remote_issued", "Cloud console address handed out"
    VOLUME_CREATED = "volume.created", "Volume created"
    VOLUME_DELETED = "volume.deleted", "Volume deleted"
    VOLUME_ATTACHED = "volume.attached", "Volume attached"
    VOLUME_DETACHED = "volume.detached", "Volume detached"
    VOLUME_EXTENDED = "volume.extended", "Volume extended"
    VOLUME_CHANGED_OUTSIDE = "volume.changed_outside", "Volume changed outside the portal"
    NETWORK_CREATED = "network.created", "Private network created"
    NETWORK_DELETED = "network.deleted", "Private network deleted"
    NETWORK_ATTACHED = "network.attached", "Server joined a private network"
    NETWORK_DETACHED = "network.detached", "Server left a private network"
    SNAPSHOT_CREATED = "snapshot.created", "Snapshot taken"
    SNAPSHOT_DELETED = "snapshot.deleted", "Snapshot deleted"
    SNAPSHOT_COPIED = "snapshot.copied", "Image copied to another region"
    BACKUP_SCHEDULE_SET = "backup.schedule_set", "Backup schedule changed"
    SSH_KEY_ADDED = "sshkey.added", "SSH key added"
    SSH_KEY_DELETED = "sshkey.deleted", "SSH key deleted"
    FIREWALL_CREATED = "firewall.created", "Firewall created"
    FIREWALL_UPDATED = "firewall.updated", "Firewall changed"
    FIREWALL_DELETED = "firewall.deleted", "Firewall deleted"
    BUDGET_CHANGED = "budget.changed", "Budget changed"
    LEASE_SET = "lease.set", "Server lease set"
    LEASE_CLEARED = "lease.cleared", "Server lease cleared"
    LEASE_EXPIRED = "lease.expired", "Server stopped by its lease"
    API_TOKEN_CREATED = "api_token.created", "API token created"
    API_TOKEN_REVOKED = "api_token.revoked", "API token revoked"
    API_TOKEN_USED = "api_token.used", "API token used"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs):
        raise TypeError("Audit events are append-only.")

    def delete(self):
        raise TypeError("Audit events are append-only.")


class AuditEvent(models.Model):
    """One thing somebody did. Rows are only ever added: never updated, never deleted."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too, so the record still says who it was after the account is gone.
    actor_email = models.EmailField(blank=True)
    organization = models.ForeignKey(
        "tenancy.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    project = models.ForeignKey(
        "tenancy.Project", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    # The project's name when it happened: the event keeps it after the project is deleted.
    project_name = models.CharField(max_length=80, blank=True)
    action = models.CharField(max_length=64, choices=AuditAction.choices, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=255, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.target_repr}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise TypeError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit events are append-only.")
