"""Instances, the operations that change them, and the state machine that says which may run when."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.urls import reverse


class InstanceStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    PROVISIONING = "provisioning", "Provisioning"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    STARTING = "starting", "Starting"
    REBOOTING = "rebooting", "Rebooting"
    RESIZING = "resizing", "Resizing"
    TERMINATING = "terminating", "Terminating"
    TERMINATED = "terminated", "Terminated"
    ERROR = "error", "Error"


S = InstanceStatus

# Which status may follow which. Every status change goes through Instance.can_become().
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.PROVISIONING, S.ERROR, S.TERMINATING}),
    S.PROVISIONING: frozenset({S.RUNNING, S.ERROR, S.TERMINATING}),
    S.RUNNING: frozenset({S.STOPPING, S.REBOOTING, S.TERMINATING, S.STOPPED, S.ERROR}),
    S.STOPPING: frozenset({S.STOPPED, S.ERROR, S.RUNNING}),
    S.STOPPED: frozenset({S.STARTING, S.RESIZING, S.TERMINATING, S.RUNNING, S.ERROR}),
    S.STARTING: frozenset({S.RUNNING, S.ERROR, S.STOPPED}),
    S.REBOOTING: frozenset({S.RUNNING, S.ERROR}),
    S.RESIZING: frozenset({S.STOPPED, S.ERROR}),
    S.TERMINATING: frozenset({S.TERMINATED, S.ERROR}),
    S.ERROR: frozenset({S.TERMINATING}),
    S.TERMINATED: frozenset(),
}
TRANSITIONAL = frozenset(
    {S.PENDING, S.PROVISIONING, S.STOPPING, S.STARTING, S.REBOOTING, S.RESIZING, S.TERMINATING}
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


@dataclass(frozen=True)
class ActionRule:
    action: Action
    allowed_from: frozenset[str]
    during: str  # the transitional status while it runs
    done: str  # the status once the cloud confirms
    verb: str  # for buttons and messages


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
        frozenset({S.PENDING, S.PROVISIONING, S.RUNNING, S.STOPPED, S.ERROR}),
        S.TERMINATING,
        S.TERMINATED,
        "Terminate",
    ),
}


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
    ssh_keys = models.ManyToManyField("compute.SshKey", blank=True, related_name="instances")
    firewall = models.ForeignKey(
        "compute.FirewallRuleSet", null=True, blank=True, on_delete=models.SET_NULL, related_name="instances"
    )
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

    @property
    def available_actions(self) -> list[ActionRule]:
        return [rule for rule in ACTIONS.values() if self.status in rule.allowed_from]

    @property
    def is_transitional(self) -> bool:
        return self.status in TRANSITIONAL

    @property
    def public_address(self) -> str:
        return self.addresses[0] if self.addresses else ""

    @property
    def login_user(self) -> str:
        return {"debian": "debian", "ubuntu": "ubuntu", "rocky": "rocky", "alpine": "alpine"}.get(
            self.image.os_family, "Administrator"
        )

    @property
    def ssh_command(self) -> str:
        return f"ssh {self.login_user}@{self.public_address}" if self.public_address else ""


def uuid_hex() -> str:
    return uuid.uuid4().hex


class OperationState(models.TextChoices):
    PENDING = "pending", "Queued"
    RUNNING = "running", "In progress"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"


class Operation(models.Model):
    """One request to the cloud, from the click to its outcome; what the worker picks up."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="operations")
    action = models.CharField(max_length=16, choices=Action.choices)
    state = models.CharField(
        max_length=16, choices=OperationState.choices, default=OperationState.PENDING, db_index=True
    )
    params = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(
        null=True, blank=True, help_text="When the cloud accepted the request."
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True, help_text="When the worker looks again.")
    step_token = models.CharField(
        max_length=32,
        default=uuid_hex,
        help_text="Only the task message carrying this may take the next step.",
    )
    deadline = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0, help_text="Backend calls that failed transiently.")
    error_message = models.CharField(max_length=500, blank=True, help_text="Shown to the customer.")
    error_detail = models.TextField(blank=True, help_text="For operators only.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "next_check_at"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.instance}"

    @property
    def is_final(self) -> bool:
        return self.state in (OperationState.SUCCEEDED, OperationState.FAILED)

    @property
    def duration(self) -> str:
        if not self.finished_at:
            return ""
        seconds = round((self.finished_at - self.created_at).total_seconds())
        return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"
