"""E-mail about servers: one per launch (however many servers it made), one per termination.
Called inside the transaction that finished the operation; mail leaves after it commits."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.compute.models import Action, Instance, LaunchBatch, Operation, OperationState
from portal.core.mail import mail_after_commit


def after_operations(done: list[tuple[Operation, Instance]]) -> None:
    """Operations just finished, inside the transaction that finished them: each launch's e-mail
    once all its servers have an outcome, one per termination, and one per failed disk restore
    (the customer waits for the server to come back)."""
    batches = {instance.batch_id for op, instance in done if op.action == Action.CREATE and instance.batch_id}
    for batch_id in batches:
        transaction.on_commit(lambda batch_id=batch_id: launch_batch_notify(batch_id))
    for op, instance in done:
        if op.action == Action.TERMINATE and op.state != OperationState.FAILED and op.requested_by_id:
            _mail(
                "compute/email/terminated",
                op.requested_by.email,
                {"instance": instance, "project": instance.project},
            )
        if op.action == Action.REBUILD and op.state == OperationState.FAILED and op.requested_by_id:
            _mail(
                "compute/email/restore_failed",
                op.requested_by.email,
                {
                    "instance": instance,
                    "project": instance.project,
                    "source": op.params.get("source_name", ""),
                    "reason": op.error_message,
                    "link": instance.get_absolute_url(),
                },
            )


def launch_batch_notify(batch_id) -> bool:
    """Send the launch's one e-mail once every server of it has an outcome. True if sent now."""
    batch = (
        LaunchBatch.objects.select_related("project__organization", "requested_by")
        .filter(pk=batch_id)
        .first()
    )
    if batch is None or batch.notified_at or batch.requested_by is None:
        return False
    creates = Operation.objects.filter(instance__batch=batch, action=Action.CREATE)
    if creates.filter(state__in=[OperationState.PENDING, OperationState.RUNNING]).exists():
        return False
    with transaction.atomic():
        # Whoever claims the batch first sends; a second worker finds it claimed.
        if not LaunchBatch.objects.filter(pk=batch.pk, notified_at=None).update(notified_at=timezone.now()):
            return False
        ops = list(
            creates.exclude(error_message__startswith="Cancelled").select_related(
                "instance__zone", "instance__image", "instance__flavor", "instance__project__organization"
            )
        )
        if not ops:
            return False
        ready = [op.instance for op in ops if op.state == OperationState.SUCCEEDED]
        failed = [op for op in ops if op.state == OperationState.FAILED]
        _mail(
            "compute/email/launch",
            batch.requested_by.email,
            {
                "batch": batch,
                "project": batch.project,
                "ready": ready,
                "failed": failed,
                "total": len(ready) + len(failed),
            },
        )
    return True


def backup_failed(snapshot, reason: str) -> None:
    """A scheduled backup failed: the project's owners and admins hear why (after commit), one
    message each, with a link to the server's backups."""
    from portal.tenancy.models import Membership, Role

    project = snapshot.project
    to = (
        Membership.objects.filter(organization_id=project.organization_id, role__in=[Role.OWNER, Role.ADMIN])
        .order_by("created_at")
        .values_list("user__email", flat=True)
    )
    instance = snapshot.source_instance
    link = f"{instance.get_absolute_url()}#backups" if instance else ""
    for address in dict.fromkeys(to):
        _mail(
            "compute/email/backup_failed",
            address,
            {"snapshot": snapshot, "instance": instance, "project": project, "reason": reason, "link": link},
        )


def _mail(template: str, to: str, context: dict) -> None:
    mail_after_commit(template=template, to=[to], context={"base_url": settings.PORTAL_BASE_URL, **context})
