"""What the compute services share: the refusal they raise, the project lock, the audit call, and
the queueing of the operations they record."""

from __future__ import annotations

import re

from django.db import transaction
from django.http import HttpRequest

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.compute.problems import Problem
from portal.compute.tasks import operations_enqueue
from portal.tenancy.access import Access
from portal.tenancy.models import Project

# Names people type for keys and firewalls: anything printable, no control characters.
LABEL_RE = re.compile(r"^[^\x00-\x1f\x7f]+$")


class ComputeRefused(Exception):
    """A request the rules refuse; `field` names the form field it is about (or None).

    `problems` lists every rule broken, so that a form or an API answer can show them all at once
    instead of one per submit; `message`, `field` and `status` are the first problem's."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.field, self.status = message, field, status
        self.problems: list[Problem] = [Problem(field, message, status)]

    @classmethod
    def of(cls, problems: list[Problem]) -> ComputeRefused:
        """One refusal for several problems. Bad input (400) outranks a rule about the state of
        things (409): fixing the input is what the customer has to do first."""
        statuses = {p.status for p in problems}
        status = 400 if 400 in statuses else problems[0].status
        first = problems[0]
        refused = cls(first.message, first.field, status)
        refused.problems = list(problems)
        return refused


def lock_project(access: Access) -> Project:
    """The project's row, locked until the transaction ends: the lock launches take, so quota and
    "is it in use?" answers cannot race."""
    return Project.objects.select_for_update().get(pk=access.project.pk)


def audit(access: Access, action: AuditAction, target, changes: dict, request: HttpRequest | None) -> None:
    audit_record(
        action=action,
        organization=access.organization,
        project=access.project,
        target=target,
        changes=changes,
        actor=access.membership.user,
        request=request,
    )


def label(value: str, *, what: str, max_length: int) -> str:
    value = (value or "").strip()
    if not value:
        raise ComputeRefused(f"Give the {what} a name.", "name")
    if len(value) > max_length:
        raise ComputeRefused(f"The name can be at most {max_length} characters.", "name")
    if not LABEL_RE.match(value):
        raise ComputeRefused("The name cannot contain line breaks or control characters.", "name")
    return value


def enqueue_on_commit(operations) -> None:
    """Queue the operations' first steps once the transaction commits. With the broker down the work
    is committed all the same and the reconciler enqueues it after its grace period: the request must
    not fail (the customer would ask a second time)."""
    steps = [(op.pk, op.step_token, op.zone.backend) for op in operations]
    transaction.on_commit(lambda: operations_enqueue(steps), robust=True)
