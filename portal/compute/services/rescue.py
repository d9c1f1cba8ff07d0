"""Rescue mode: the server boots the operator's rescue system with its own disk attached as a
second disk, so that a customer who locked themselves out (a firewall rule, a broken sshd, a lost
key) can repair it from the console; leaving rescue boots its own disk again (docs/console.md).

Both are server actions of the state machine (`Action.RESCUE`, `Action.UNRESCUE` in ACTIONS), run by
the operation runner like a reboot and refused where the zone does not declare Capability.RESCUE.
A server in rescue is billed as a running one."""

from __future__ import annotations

from django.http import HttpRequest

from portal.compute.models import Action, Instance, Operation
from portal.compute.services.instances import instance_action
from portal.tenancy.access import Access


def instance_rescue(*, access: Access, instance: Instance, request: HttpRequest | None = None) -> Operation:
    """Boot the rescue system (from running or stopped). Raises ComputeRefused: no rescue in the
    zone (409), the server doing something else (409), a role that may not operate (PermissionDenied)."""
    return instance_action(access=access, instance=instance, action=Action.RESCUE, request=request)


def instance_unrescue(*, access: Access, instance: Instance, request: HttpRequest | None = None) -> Operation:
    """Leave rescue: boot the server's own disk again; it is running afterwards."""
    return instance_action(access=access, instance=instance, action=Action.UNRESCUE, request=request)
