"""Instances, the operations that change them, and the state machine that says which may run when."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.urls import reverse

from portal.compute.models.firewall import FirewallState


class InstanceStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    PROVISIONING = "provisioning", "Provisioning"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    STARTING = "starting", "Starting"
    REBOOTING = "rebooting", "Rebooting"
    RESIZING = "resizing", "Resizing"
    REBUILDING = "rebuilding", "Restoring disk"
    RESCUING = "rescuing", "Entering rescue"
    RESCUE = "rescue", "In rescue mode"
    UNRESCUING = "unrescuing", "Leaving rescue"
    TERMINATING = "terminating", "Terminating"
    TERMINATED = "terminated", "Terminated"
    ERROR = "error", "Error"


S = InstanceStatus

# Which status may follow which. Every status change goes through Instance.can_become().
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.PROVISIONING, S.ERROR, S.TERMINATING}),
    S.PROVISIONING: frozenset({S.RUNNING, S.ERROR, S.TERMINATING}),
    S.RUNNING: frozenset(
        {S.STOPPING, S.REBOOTING, S.REBUILDING, S.RESCUING, S.TERMINATING, S.STOPPED, S.ERROR}
    ),
    S.STOPPING: frozenset({S.STOPPED, S.ERROR, S.RUNNING}),
    S.STOPPED: frozenset(
        {S.STARTING, S.RESIZING, S.REBUILDING, S.RESCUING, S.TERMINATING, S.RUNNING, S.ERROR}
    ),
    S.STARTING: frozenset({S.RUNNING, S.ERROR, S.STOPPED}),
    S.REBOOTING: frozenset({S.RUNNING, S.ERROR}),
    S.RESIZING: frozenset({S.STOPPED, S.ERROR}),
    # A restored disk: back to what the server was doing before (Operation.params["then"]).
    S.REBUILDING: frozenset({S.RUNNING, S.STOPPED, S.ERROR}),
    # Rescue: a failed rescue leaves what the cloud says (running or stopped); in rescue the server
    # is left by unrescue (or terminated); a failed unrescue leaves it in rescue.
    S.RESCUING: frozenset({S.RESCUE, S.RUNNING, S.STOPPED, S.ERROR}),
    S.RESCUE: frozenset({S.UNRESCUING, S.TERMINATING, S.RUNNING, S.ERROR}),
    S.UNRESCUING: frozenset({S.RUNNING, S.RESCUE, S.ERROR}),
    S.TERMINATING: frozenset({S.TERMINATED, S.ERROR}),
    S.ERROR: frozenset({S.TERMINATING}),
    S.TERMINATED: frozenset(),
}
TRANSITIONAL = frozenset(
    {
        S.PENDING,
        S.PROVISIONING,
        S.STOPPING,
        S.STARTING,
        S.REBOOTING,
        S.RESIZING,
        S.REBUILDING,
        S.RESCUING,
        S.UNRESCUING,
        S.TERMINATING,
    }
)
# Statuses that hold quota: everything that exists or is about to. Failed launches free theirs.
HOLDS_QUOTA = frozenset(set(S) - {S.TERMINATED, S.ERROR})


class Action(models.TextChoices):
    CREATE = "create", "Launch"
    START = "start", "Start"
    STOP = "stop", "Stop"
    REBOOT = "reboot", "Reboot"
    HARD_REBOOT = "hard_reboot", "Hard reboot"
    RESIZE = "resize", "Resize"
    TERMINATE = "terminate", "Terminate"
    # Rescue mode (services/rescue.py): offered only where the zone declares Capability.RESCUE.
    RESCUE = "rescue", "Rescue"
    UNRESCUE = "unrescue", "Leave rescue"
    # The root disk replaced by a snapshot's or backup's (services/restores.py); not in ACTIONS: it
    # needs an image and a typed confirmation, and leaves the server as it found it.
    REBUILD = "rebuild", "Restore disk"
    # Volumes (their operations' target is `Operation.volume`; see compute/operations/volumes.py).
    VOLUME_CREATE = "volume_create", "Create volume"
    VOLUME_ATTACH = "volume_attach", "Attach volume"
    VOLUME_DETACH = "volume_detach", "Detach volume"
    VOLUME_EXTEND = "volume_extend", "Extend volume"
    VOLUME_DELETE = "volume_delete", "Delete volume"
    # Snapshots and backups (target `Operation.snapshot`; see compute/operations/snapshots.py).
    SNAPSHOT_CREATE = "snapshot_create", "Take snapshot"
    SNAPSHOT_DELETE = "snapshot_delete", "Delete snapshot"
    SNAPSHOT_COPY = "snapshot_copy", "Copy to region"
    # The server's firewall rules made the cloud's (compute/operations/firewalls.py).
    FIREWALL_APPLY = "firewall_apply", "Apply firewall"
    # Private networks (target `Operation.network`; see compute/operations/networks.py).
    NETWORK_CREATE = "network_create", "Create network"
    NETWORK_DELETE = "network_delete", "Delete network"
    NETWORK_ATTACH = "network_attach", "Join network"
    NETWORK_DETACH = "network_detach", "Leave network"


@dataclass(frozen=True)
class ActionRule:
    action: Action
    allowed_from: frozenset[str]
    during: str  # the transitional status while it runs
    done: str  # the status once the cloud confirms
    verb: str  # for buttons and messages


# Where a server's disk may be restored from, and what it is during the restore.
REBUILD_FROM = frozenset({S.RUNNING, S.STOPPED})

# What each action needs and leaves. Drives the buttons shown and the server-side check.
ACTIONS: dict[str, ActionRule] = {
    Action.START: ActionRule(Action.START, frozenset({S.STOPPED}), S.STARTING, S.RUNNING, "Start"),
    Action.STOP: ActionRule(Action.STOP, frozenset({S.RUNNING}), S.STOPPING, S.STOPPED, "Stop"),
    Action.REBOOT: ActionRule(Action.REBOOT, frozenset({S.RUNNING}), S.REBOOTING, S.RUNNING, "Reboot"),
    Action.HARD_REBOOT: ActionRule(
        Action.HARD_REBOOT, frozenset({S.RUNNING}), S.REBOOTING, S.RUNNING, "Hard reboot"
    ),
    Action.RESIZE: ActionRule(Action.RESIZE, frozenset({S.STOPPED}), S.RESIZING, S.STOPPED, "Resize"),
    Action.TERMINATE: ActionRule(
        Action.TERMINATE,
        frozenset({S.PENDING, S.PROVISIONING, S.RUNNING, S.STOPPED, S.RESCUE, S.ERROR}),
        S.TERMINATING,
        S.TERMINATED,
        "Terminate",
    ),
    Action.RESCUE: ActionRule(
        Action.RESCUE, frozenset({S.RUNNING, S.STOPPED}), S.RESCUING, S.RESCUE, "Rescue"
    ),
    Action.UNRESCUE: ActionRule(
        Action.UNRESCUE, frozenset({S.RESCUE}), S.UNRESCUING, S.RUNNING, "Leave rescue"
    ),
}
# Actions a zone may not have: offered and accepted only where its backend declares the capability.
NEEDS_CAPABILITY = {Action.RESCUE: "rescue", Action.UNRESCUE: "rescue"}


class LaunchBatch(models.Model):
    """One click on Launch: 1..N instances, and the one e-mail about how it went."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("tenancy.Project", on_delete=models.CASCADE, related_name="launch_batches")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Launch {self.pk} in {self.project}"


# What a row of the server list shows: its query loads these columns and no more.
LIST_COLUMNS = (
    "project",
    "name",
    "status",
    "fault_message",
    "addresses",
    "created_at",
    "zone__code",
    "zone__region__name",
    "flavor__name",
    "flavor__vcpus",
    "flavor__ram_gib",
    "image__name",
)


class InstanceQuerySet(models.QuerySet):
    def visible(self) -> InstanceQuerySet:
        return self.exclude(status=S.TERMINATED)

    def holding_quota(self) -> InstanceQuerySet:
        # An error row still holds quota while a server exists in the cloud for it.
        return self.filter(models.Q(status__in=HOLDS_QUOTA) | models.Q(status=S.ERROR, backend_id__gt=""))

    def with_catalog(self) -> InstanceQuerySet:
        """Servers with their zone (region, jurisdiction), size and image: for pages and answers
        that show one server, or a few, in full."""
        return self.select_related("zone__region__jurisdiction", "flavor", "image")

    def for_list(self) -> InstanceQuerySet:
        """What a row of the server list shows and no more: a page is 50 rows of five models, and
        a server's user data can be tens of kilobytes. (A field read that is not here costs a query
        per row: tests/compute/test_query_counts.py would see it.)"""
        return self.select_related("zone__region", "flavor", "image").only(*LIST_COLUMNS)


class Instance(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("tenancy.Project", on_delete=models.PROTECT, related_name="instances")
    name = models.CharField(max_length=63)
    zone = models.ForeignKey("catalog.Zone", on_delete=models.PROTECT, related_name="instances")
    flavor = models.ForeignKey("catalog.Flavor", on_delete=models.PROTECT, related_name="instances")
    image = models.ForeignKey("catalog.Image", on_delete=models.PROTECT, related_name="instances")
    root_disk_gib = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=InstanceStatus.choices, default=S.PENDING, db_index=True)
    backend_id = models.CharField(max_length=128, blank=True)
    addresses = models.JSONField(default=list, blank=True)
    # The name the public address resolves back to (PTR), set by the customer, exported by the
    # operator (compute/reverse_dns.py); "" for none.
    reverse_dns = models.CharField(max_length=253, blank=True)
    ssh_keys = models.ManyToManyField("compute.SshKey", blank=True, related_name="instances")
    firewall = models.ForeignKey(
        "compute.FirewallRuleSet", null=True, blank=True, on_delete=models.SET_NULL, related_name="instances"
    )
    # What its cloud enforces (FirewallState): the fingerprint of the rules last applied and when
    # (backends/firewall.py's rules_hash), or why applying them failed.
    firewall_state = models.CharField(max_length=12, blank=True, default="", choices=FirewallState.choices)
    firewall_applied_hash = models.CharField(max_length=16, blank=True)
    firewall_applied_at = models.DateTimeField(null=True, blank=True)
    firewall_message = models.CharField(max_length=500, blank=True)
    user_data = models.TextField(blank=True)
    termination_protection = models.BooleanField(default=False)
    fault_message = models.CharField(
        max_length=500, blank=True, help_text="Why it failed, in the customer's words."
    )
    batch = models.ForeignKey(
        LaunchBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="instances"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    running_since = models.DateTimeField(null=True, blank=True)
    terminated_at = models.DateTimeField(null=True, blank=True)

    objects = InstanceQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "status"]),
            models.Index(fields=["project", "-created_at"]),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse(
            "compute:instance_detail",
            kwargs={
                "org_slug": self.project.organization.slug,
                "project_slug": self.project.slug,
                "instance_id": self.pk,
            },
        )

    def can_become(self, status: str) -> bool:
        return status in TRANSITIONS[self.status]

    def allows(self, action: str) -> bool:
        rule = ACTIONS.get(action)
        return rule is not None and self.status in rule.allowed_from

    def record_success(
        self, action: str, *, addresses=(), flavor_id=None, image_id=None, then=None, now
    ) -> list[str]:
        """Set what a succeeded operation leaves on the server; the names of the fields changed.
        (`then`: the status a restored disk leaves, the one the server had; `image_id` its image.)

        Nothing ([]) when the server can no longer become what the action leaves: a newer request
        (terminate, asked while it was being created) decides its status."""
        if action == Action.CREATE:
            done = S.RUNNING
        elif action == Action.REBUILD:
            done = then or S.RUNNING
        else:
            done = ACTIONS[action].done
        if not self.can_become(done):
            return []
        self.status, self.updated_at = done, now
        fields = ["status", "updated_at"]
        if addresses:
            self.addresses = list(addresses)
            fields.append("addresses")
        if done in (S.RUNNING, S.RESCUE) and not self.running_since:  # rescue is billed as running
            self.running_since = now
            fields.append("running_since")
        if done == S.STOPPED:
            self.running_since = None
            fields.append("running_since")
        if action == Action.RESIZE:
            self.flavor_id = flavor_id
            fields.append("flavor")
        if action == Action.REBUILD and image_id:
            self.image_id = image_id  # its disk is now that image's
            fields.append("image")
        if action == Action.TERMINATE:
            self.terminated_at, self.addresses = now, []
            fields += ["terminated_at", "addresses"]
        if action == Action.CREATE:
            self.fault_message = ""
            fields.append("fault_message")
        return fields

    def record_failure(self, message: str, status_in_cloud: str | None) -> None:
        """After a failed operation: what the cloud says the server is doing when that is a settled
        state (a failed stop usually leaves it running), otherwise an error for a person to look at."""
        self.status = status_in_cloud if status_in_cloud in (S.RUNNING, S.STOPPED, S.RESCUE) else S.ERROR
        self.fault_message = message[:500] if self.status == S.ERROR else ""

    @property
    def available_actions(self) -> list[ActionRule]:
        """The actions every zone has that the server's status allows (rescue: `rescue_actions`)."""
        return [
            rule
            for rule in ACTIONS.values()
            if self.status in rule.allowed_from and rule.action not in NEEDS_CAPABILITY
        ]

    @property
    def in_rescue(self) -> bool:
        return self.status in (S.RESCUING, S.RESCUE, S.UNRESCUING)

    @property
    def is_transitional(self) -> bool:
        return self.status in TRANSITIONAL

    @property
    def public_address(self) -> str:
        return self.addresses[0] if self.addresses else ""

    @property
    def ipv6_address(self) -> str:
        """Its IPv6 address beside the public one, where it has one ("" otherwise)."""
        return next((address for address in self.addresses[1:] if ":" in address), "")

    @property
    def login_user(self) -> str:
        return {"debian": "debian", "ubuntu": "ubuntu", "rocky": "rocky", "alpine": "alpine"}.get(
            self.image.os_family, "Administrator"
        )

    @property
    def ssh_command(self) -> str:
        return f"ssh {self.login_user}@{self.public_address}" if self.public_address else ""
