"""Nova's changePassword server action, as the fake's compute service answers it.

As nova.api.openstack.compute.admin_password: a body without a string `adminPass` is a 400 (the
fake also refuses a blank one, which no guest takes); an unknown server is the usual 404; the
server must be ACTIVE with no task under way, else 409 in Nova's words for an invalid state. Then
the compute host sets it (an RPC call, so the answer waits for it) and the answer is 202 with no
body. A hypervisor or guest that cannot set it answers as Nova does: `compute.password_unsupported`
= "agent" is libvirt's 409 "QEMU guest agent is not enabled", "driver" a 501 from a driver without
the call. The password the guest now has is kept on the server (`admin_password`) for the tests."""

from __future__ import annotations

from tests.backends.fake_openstack.nova_server import Server, nova_error


def password_action(compute, server: Server, args, refuse):
    password = (args or {}).get("adminPass") if isinstance(args, dict) else None
    if not isinstance(password, str) or not password.strip():
        raise nova_error(
            400, "Invalid input for field/attribute changePassword. 'adminPass' is a required property"
        )
    if server.vm_state != "active" or server.task_state is not None:
        raise refuse("changePassword")
    if compute.password_unsupported == "agent":
        raise nova_error(409, "QEMU guest agent is not enabled")
    if compute.password_unsupported == "driver":
        raise nova_error(501, "Unable to set password on instance")
    server.admin_password = password
    return 202, None, {}
