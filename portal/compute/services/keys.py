"""Writes for a project's SSH keys: each takes `access`, checks the role, validates, changes rows
under the project lock, records an audit event, and raises ComputeRefused."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.http import HttpRequest

from portal.audit.models import AuditAction
from portal.compute.models import (
    SshKey,
)
from portal.compute.services.common import ComputeRefused, Problem, audit, label, lock_project
from portal.compute.sshkeys import InvalidKey, parse_public_key
from portal.tenancy.access import Access, Perm

KEY_TYPE_LABELS = {"ssh-ed25519": "Ed25519", "ssh-rsa": "RSA"}


def key_type_label(key_type: str) -> str:
    return KEY_TYPE_LABELS.get(key_type, "ECDSA" if key_type.startswith("ecdsa-") else key_type)


def ssh_key_add(*, access: Access, name: str, public_key: str, request: HttpRequest | None = None) -> SshKey:
    """Save a public key to the project. The name defaults to the key's comment.

    Refuses (ComputeRefused naming the field) a key that does not parse, and a key or a name
    the project already has: the message says which key it duplicates.
    """
    access.require(Perm.RESOURCE_CREATE)
    problems = []
    try:
        parsed = parse_public_key(public_key)
    except InvalidKey as error:
        parsed = None
        problems.append(Problem("public_key", str(error)))
    if name or parsed:
        try:
            name = label(
                name or parsed.comment[:80] or key_type_label(parsed.key_type), what="key", max_length=80
            )
        except ComputeRefused as refused:
            problems += refused.problems
    if problems:
        raise ComputeRefused.of(problems)
    with transaction.atomic():
        project = lock_project(access)
        same_key = SshKey.objects.filter(project=project, fingerprint=parsed.fingerprint).first()
        if same_key is not None:
            raise ComputeRefused(
                f"This key is already in the project as “{same_key.name}” ({parsed.fingerprint}).",
                "public_key",
                409,
            )
        if SshKey.objects.filter(project=project, name=name).exists():
            raise ComputeRefused(
                f"The project already has a key named “{name}”; choose another name.", "name", 409
            )
        try:
            with transaction.atomic():
                key = SshKey.objects.create(
                    project=project,
                    name=name,
                    public_key=parsed.normalized,
                    key_type=parsed.key_type,
                    bits=parsed.bits,
                    fingerprint=parsed.fingerprint,
                    created_by=access.membership.user,
                )
        except IntegrityError:  # the wizard saves keys without the project lock
            raise ComputeRefused(
                "This key or name was just added to the project.", "public_key", 409
            ) from None
        audit(
            access,
            AuditAction.SSH_KEY_ADDED,
            key,
            {
                "fingerprint": [None, key.fingerprint],
                "type": [None, f"{key_type_label(key.key_type)} {key.bits}"],
            },
            request,
        )
    return key


def ssh_key_delete(*, access: Access, key: SshKey, request: HttpRequest | None = None) -> None:
    """Remove a key from the project. Servers that already have it keep it in authorized_keys."""
    access.require(Perm.RESOURCE_OPERATE)
    with transaction.atomic():
        lock_project(access)
        key = SshKey.objects.filter(project=access.project, pk=key.pk).first()
        if key is None:
            return  # removed meanwhile: nothing left to do
        audit(access, AuditAction.SSH_KEY_DELETED, key, {"fingerprint": [key.fingerprint, None]}, request)
        key.delete()
