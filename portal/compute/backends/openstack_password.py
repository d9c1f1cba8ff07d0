"""Root password reset on OpenStack (`set_password` in base.py): Nova's changePassword server action.

`POST /servers/{id}/action {"changePassword": {"adminPass": …}}` (openstacksdk's
`change_server_password`) asks the hypervisor to set the admin user's password in the running guest
(root on Linux; libvirt does it through the QEMU guest agent, so the image must run one and carry
`hw_qemu_guest_agent=yes`). Nova answers 202 once the compute host has done it (the RPC is a call).
Only an ACTIVE server takes it (else 409); a hypervisor or guest that cannot answers 409 ("QEMU
guest agent is not enabled", "set admin password is not supported") or 501 (a driver without it):
both are the customer's plain "this server cannot have its password reset", not a retry.

Nova's policy allows it to the server's project by default (`os_compute_api:os-admin-password`);
a cloud whose guests cannot take it (no agent in the images) should say so in the zone's settings:
`"password_reset": false` declares the capability absent (docs/backends/openstack.md).

The password goes in the request body only: keystoneauth logs bodies at DEBUG level on
`keystoneauth.session`, which the portal's logging keeps at INFO (settings.LOGGING).
"""

from __future__ import annotations

from openstack import exceptions as sdk_exceptions

from portal.compute.backends.base import BackendState, Capability, Rejected, not_available
from portal.compute.backends.openstack_mapping import IS_DOING, error_text, server_state

UNSUPPORTED = (
    "This server's cloud could not set its password: the image does not run the agent that does "
    "it (the QEMU guest agent). Use rescue mode or the console instead."
)


class OpenStackPassword:
    """Mixed into OpenStackBackend (uses its `_target`, `_connection`, `_cloud`, `_fetch`)."""

    def set_password(self, backend_id: str, user: str, password: str) -> None:
        # Nova sets the image's admin user (root, or Administrator on Windows): `user` is that one.
        zone, server_id = self._target(backend_id)
        if Capability.PASSWORD_RESET not in self.capabilities(zone):
            raise not_available(Capability.PASSWORD_RESET, zone)
        conn = self._connection(zone)
        with self._cloud("reset the password of server", conn, server_id):
            try:
                conn.compute.change_server_password(server_id, password)
            except sdk_exceptions.ConflictException as conflict:
                server = self._fetch(conn, server_id)
                state = server_state(server.status or "", server.task_state)
                detail = f"changePassword {backend_id}: {error_text(conflict)}"
                if state == BackendState.RUNNING:  # running, and still refused: the guest can't
                    raise Rejected(UNSUPPORTED, detail) from None
                raise Rejected(
                    f"The server is {IS_DOING[state]} right now: its password can be reset while it "
                    "runs. Try again once it is running.",
                    detail,
                ) from None
            except sdk_exceptions.HttpException as error:
                if error.status_code != 501:
                    raise
                raise Rejected(UNSUPPORTED, f"changePassword {backend_id}: {error_text(error)}") from None
