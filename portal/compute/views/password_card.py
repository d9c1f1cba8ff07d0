"""A server's root password card on its page: reset it (asking once more) where the zone can, or
why not in plain words; views/consoles.py takes the form and renders the new password once."""

from __future__ import annotations

from portal.compute.models import Instance, InstanceStatus
from portal.compute.services.passwords import password_reset_refusal
from portal.tenancy.access import Access, Perm


def password_context(access: Access, instance: Instance, refusal: str) -> dict:
    """`refusal`: the zone's answer for PASSWORD_RESET (capability_refusals), "" when it has it."""
    if (
        not access.can(Perm.CONSOLE)
        or not instance.backend_id
        or instance.status == InstanceStatus.TERMINATED
    ):
        return {"password_card": False}
    absent = password_reset_refusal(instance, refusal) if refusal else ""
    return {
        "password_card": True,
        "password_absent": absent,
        "password_resettable": not absent and instance.status == InstanceStatus.RUNNING,
    }
