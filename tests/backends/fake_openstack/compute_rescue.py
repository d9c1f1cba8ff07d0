"""Nova's rescue and unrescue server actions, as the fake's compute service answers them.

As nova.compute.api: rescue from vm_state active or stopped (and error) with no task under way
(else 409 in Nova's words), task `rescuing` for a while, then vm_state `rescued` (status RESCUE);
the answer is 200 with the rescue system's `adminPass` (generated when not given). A rescue image
that Glance does not have is a 400. Unrescue only from `rescued` (else 409), task `unrescuing`,
then `active`."""

from __future__ import annotations

import secrets

from tests.backends.fake_openstack.nova_server import Server, nova_error

RESCUABLE = ("active", "stopped", "error")


def rescue_action(compute, server: Server, action: str, args, refuse, lands):
    if action == "rescue":
        args = args or {}
        image = args.get("rescue_image_ref")
        if image is not None and image not in compute.glance.images:
            raise nova_error(400, f"Image {image} could not be found.")
        if server.vm_state not in RESCUABLE or server.task_state is not None:
            raise refuse("rescue")
        server.task_state = "rescuing"
        server.rescue_image = image or server.image_id  # Nova's default: the server's own image
        compute.later(server, compute.action_seconds, lands("rescued"))
        return 200, {"adminPass": args.get("adminPass") or secrets.token_urlsafe(12)}, {}
    if server.vm_state != "rescued" or server.task_state is not None:
        raise refuse("unrescue")
    server.task_state = "unrescuing"
    compute.later(server, compute.action_seconds, lands("active"))
    return 202, None, {}
