"""Operations: one request to the cloud each, from the click to its outcome.

An operation's life is a few conditional UPDATEs, so that of two deliveries of the same step
(a redelivered message, the reconciler's replacement) only one takes effect: `claim` hands the
next step to the message carrying the current step token, `close` finishes it once. How each kind
of operation reaches the cloud is `portal.compute.operations.OPERATIONS`; the steps themselves are
`portal.compute.runner`.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.compute.models.instances import Action


def uuid_hex() -> str:
    return uuid.uuid4().hex


class OperationState(models.TextChoices):
    PENDING = "pending", "Queued"
    RUNNING = "running", "In progress"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"


ACTIVE_STATES = (OperationState.PENDING, OperationState.RUNNING)


def operation_deadline():
    return timezone.now() + timedelta(seconds=settings.COMPUTE_OPERATION_TIMEOUT_SECONDS)


class OperationQuerySet(models.QuerySet["Operation"]):
    def active(self) -> OperationQuerySet:
        return self.filter(state__in=ACTIVE_STATES)

    def claim(self, steps: Iterable[tuple[str, str]]) -> tuple[str, list[Operation]]:
        """Take the next step of each operation whose message carries its current token.

        The token changes with every step, so a duplicate or late message (a redelivery, a message
        the reconciler already replaced) finds a stale token and takes nothing: one chain of steps
        at most. The operations claimed together share the new token (their next message carries
        it). The claim also pushes `next_check_at` forward by the step's lease: if this worker dies
        mid-step, the reconciler starts a new chain once that time has passed."""
        new = uuid_hex()
        lease = timezone.now() + timedelta(seconds=settings.COMPUTE_STEP_LEASE_SECONDS)
        by_token = defaultdict(list)
        for operation_id, token in steps:
            by_token[token].append(operation_id)
        for token, ids in by_token.items():
            self.active().filter(pk__in=ids, step_token=token).update(step_token=new, next_check_at=lease)
        claimed = self.select_related(
            "instance__zone",
            "instance__flavor",
            "instance__image",
            "volume__zone",
            "volume__project",
            "snapshot__zone",
            "snapshot__project",
            "network__zone",
            "network__project",
        ).filter(pk__in=[pk for ids in by_token.values() for pk in ids], step_token=new)
        return new, list(claimed.order_by("pk"))

    def start(self, operations: list[Operation]) -> list[Operation]:
        """Pending → running, in one statement: those of `operations` that were pending."""
        pending = [op for op in operations if op.state == OperationState.PENDING]
        if pending:
            self.filter(pk__in=[op.pk for op in pending], state=OperationState.PENDING).update(
                state=OperationState.RUNNING
            )
            for op in pending:
                op.state = OperationState.RUNNING
        return pending

    def accepted(self, operations: list[Operation], next_check_at) -> None:
        """The cloud took these requests: from now on their steps look at how they are going."""
        self.filter(pk__in=[op.pk for op in operations], submitted_at=None).update(
            submitted_at=timezone.now(), next_check_at=next_check_at
        )

    def close_open(self, ids: Iterable, state: str) -> set:
        """`Operation.close` for several at once (inside a transaction): the ids of those that were
        still open and are now closed; the others another delivery finished first."""
        open_ = set(
            self.active()
            .select_for_update()
            .filter(pk__in=list(ids))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        self.filter(pk__in=open_).update(
            state=state, finished_at=timezone.now(), error_message="", error_detail=""
        )
        return open_


class Operation(models.Model):
    """One request to the cloud, from the click to its outcome; what the worker picks up."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The target: a server, (volume_*) a volume, (snapshot_*) a snapshot or (network_*) a network;
    # exactly one.
    instance = models.ForeignKey(
        "compute.Instance", null=True, blank=True, on_delete=models.CASCADE, related_name="operations"
    )
    volume = models.ForeignKey(
        "compute.Volume", null=True, blank=True, on_delete=models.CASCADE, related_name="operations"
    )
    snapshot = models.ForeignKey(
        "compute.Snapshot", null=True, blank=True, on_delete=models.CASCADE, related_name="operations"
    )
    network = models.ForeignKey(
        "compute.Network", null=True, blank=True, on_delete=models.CASCADE, related_name="operations"
    )
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
    deadline = models.DateTimeField(default=operation_deadline)
    attempts = models.PositiveIntegerField(default=0, help_text="Backend calls that failed transiently.")
    error_message = models.CharField(max_length=500, blank=True, help_text="Shown to the customer.")
    error_detail = models.TextField(blank=True, help_text="For operators only.")

    objects = OperationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "next_check_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    instance__isnull=False, volume__isnull=True, snapshot__isnull=True, network__isnull=True
                )
                | models.Q(instance__isnull=True, volume__isnull=False, snapshot__isnull=True, network__isnull=True)
                | models.Q(instance__isnull=True, volume__isnull=True, snapshot__isnull=False, network__isnull=True)
                | models.Q(instance__isnull=True, volume__isnull=True, snapshot__isnull=True, network__isnull=False),
                name="operation_has_one_target",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.target}"

    @property
    def target(self):
        """What the operation changes: its server, its volume, its snapshot or its network."""
        if self.instance_id:
            return self.instance
        if self.volume_id:
            return self.volume
        return self.snapshot if self.snapshot_id else self.network

    @property
    def is_final(self) -> bool:
        return self.state in (OperationState.SUCCEEDED, OperationState.FAILED)

    @property
    def zone(self):
        """Where the operation happens: its backend is the zone's."""
        return self.target.zone

    @property
    def duration(self) -> str:
        if not self.finished_at:
            return ""
        seconds = round((self.finished_at - self.created_at).total_seconds())
        return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"

    def retry_later(self, detail: str, next_check_at) -> int:
        """A transient failure: count it, and when to look again. Returns the attempts so far."""
        Operation.objects.filter(pk=self.pk).update(
            attempts=models.F("attempts") + 1, error_detail=detail, next_check_at=next_check_at
        )
        self.attempts += 1
        return self.attempts

    def close(self, state: str, *, message: str = "", detail: str = "") -> bool:
        """Finish the operation once: of two racing deliveries only the first gets True."""
        now = timezone.now()
        closed = (
            Operation.objects.active()
            .filter(pk=self.pk)
            .update(state=state, finished_at=now, error_message=message[:500], error_detail=detail)
        )
        if closed:
            self.state, self.finished_at = state, now
            self.error_message, self.error_detail = message[:500], detail
        return bool(closed)
