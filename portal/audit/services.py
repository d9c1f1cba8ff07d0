from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from portal.audit.models import AuditAction, AuditEvent


def client_ip(request: HttpRequest | None) -> str | None:
    # REMOTE_ADDR only: behind a proxy, configure the proxy to set it (X-Forwarded-For is forgeable).
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    action: AuditAction,
    actor=None,
    organization=None,
    project=None,
    target: models.Model | None = None,
    changes: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    ip_address: str | None = None,
) -> AuditEvent:
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_email=getattr(actor, "email", "") or "",
        organization=organization,
        project=project,
        project_name=project.name if project is not None else "",
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:255] if target is not None else "",
        changes=changes or {},
        ip_address=client_ip(request) if request is not None else ip_address,
    )


def diff_fields(before: models.Model | dict, after: models.Model, fields: list[str]) -> dict[str, list]:
    """{field: [old, new]} for the fields whose value differs."""
    old = before if isinstance(before, dict) else {f: getattr(before, f) for f in fields}
    return {
        f: [_jsonable(old[f]), _jsonable(getattr(after, f))] for f in fields if old[f] != getattr(after, f)
    }


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
