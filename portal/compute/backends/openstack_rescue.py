"""Rescue mode on OpenStack (`rescue_server`, `unrescue_server` in base.py): Nova's rescue and
unrescue server actions.

`POST /servers/{id}/action {"rescue": {…}}` boots the server from a rescue image with its own disk
attached as the second disk (Nova: status RESCUE; while it boots, task `rescuing`), from ACTIVE or
SHUTOFF; `{"unrescue": null}` boots its own disk again (task `unrescuing`, then ACTIVE). Any other
state is Nova's 409. The rescue image is the zone's `rescue_image` setting (a Glance image id) or,
without it, what Nova is configured with (`[DEFAULT] rescue_image_ref`, else the server's own image).

Nova policy allows rescue to a server's project by default (`os_compute_api:os-rescue`); a cloud
that restricts it answers 403, which the zone's settings should then say: `"rescue": false`
declares the capability absent (docs/backends/openstack.md).
"""

from __future__ import annotations

from portal.compute.backends.base import BackendState, Capability, not_available

B = BackendState


class OpenStackRescue:
    """Mixed into OpenStackBackend (uses its `_target`, `_zone` and `_action`)."""

    def _rescue_zone(self, backend_id: str) -> dict:
        zone, _ = self._target(backend_id)
        if Capability.RESCUE not in self.capabilities(zone):
            raise not_available(Capability.RESCUE, zone)
        return self._zone(zone)

    def rescue_server(self, backend_id: str) -> None:
        image = self._rescue_zone(backend_id).get("rescue_image") or None

        def rescue(conn, server_id) -> None:
            # Nova answers the rescue system's root password (adminPass); the rescue images an
            # operator offers log in with the server's SSH keys or on the console, so it is not kept.
            conn.compute.rescue_server(server_id, image=image)

        self._action(backend_id, "rescued", rescue, fine={B.RESCUING, B.RESCUE})

    def unrescue_server(self, backend_id: str) -> None:
        self._rescue_zone(backend_id)
        self._action(
            backend_id,
            "taken out of rescue",
            lambda conn, server_id: conn.compute.unrescue_server(server_id),
            fine={B.UNRESCUING, B.RUNNING},
        )
