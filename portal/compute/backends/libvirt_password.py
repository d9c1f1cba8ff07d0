"""Root password reset on libvirt (`set_password` in base.py): virDomainSetUserPassword, which the
QEMU guest agent in the running guest carries out (qemu-ga's `guest-set-user-password`).

Every domain has the agent's channel (libvirt_xml); a zone declares PASSWORD_RESET unless its
settings say `"password_reset": false` (its images run no agent). Per server, the host answers:
a guest whose agent is not connected gets a plain refusal that points to rescue mode and the
console (libvirt_host_password.py, docs/backends/libvirt.md "Password reset").
"""

from __future__ import annotations

from portal.compute.backends.base import Capability, Rejected, Transient, not_available


class LibvirtPassword:
    """Mixed into LibvirtBackend (uses its `_config`, `_parse_id`, `_locate` and `_host`)."""

    def _password_capabilities(self, zone: str) -> set[Capability]:
        try:
            config = self._config(zone)
        except Transient:
            return set()
        return set() if config.get("password_reset") is False else {Capability.PASSWORD_RESET}

    def set_password(self, backend_id: str, user: str, password: str) -> None:
        zone = self._parse_id(backend_id)[0]
        if Capability.PASSWORD_RESET not in self._password_capabilities(zone):
            raise not_available(Capability.PASSWORD_RESET, zone)
        if not password:
            raise Rejected("A new password is needed.", f"libvirt set_password {backend_id} without one")
        config, uri, domain_uuid, _summary = self._locate(backend_id)
        self._host(config, uri, "set_password", domain_uuid=domain_uuid, user=user, password=password)
