"""Rescue mode on libvirt (`rescue_server`, `unrescue_server` in base.py): the domain boots the
operator's rescue kernel and initramfs with the server's own disk as its second disk, /dev/vdb.

A zone has it when its settings name both files on the hosts, `rescue_kernel` and `rescue_initrd`
(and optionally `rescue_cmdline`, default `console=ttyS0`); without them it declares no RESCUE. The
serial console and its log stay as they are, so the customer repairs the disk from the console.
What runs on the host, and why the seed becomes vda, is in libvirt_host_rescue.py
(docs/backends/libvirt.md, "Rescue mode").
"""

from __future__ import annotations

import time

from portal.compute.backends.base import Capability, Transient, not_available

RESCUE_CMDLINE = "console=ttyS0"


class LibvirtRescue:
    """Mixed into LibvirtBackend (uses its `_config`, `_parse_id`, `_locate` and `_host`)."""

    def _rescue_capabilities(self, zone: str) -> set[Capability]:
        try:
            config = self._config(zone)
        except Transient:
            return set()
        return {Capability.RESCUE} if config.get("rescue_kernel") and config.get("rescue_initrd") else set()

    def _rescue_located(self, backend_id: str) -> tuple[dict, str, str]:
        zone = self._parse_id(backend_id)[0]
        if Capability.RESCUE not in self._rescue_capabilities(zone):
            raise not_available(Capability.RESCUE, zone)
        config, uri, domain_uuid, _summary = self._locate(backend_id)
        return config, uri, domain_uuid

    def _deadline(self, config: dict) -> float:
        return time.time() + float(config["stop_timeout_seconds"])

    def rescue_server(self, backend_id: str) -> None:
        """Power off as a stop does (the plug pulled after the zone's timeout), then boot the rescue
        system; a stopped server boots it at once. Again while rescuing or in rescue: nothing."""
        config, uri, domain_uuid = self._rescue_located(backend_id)
        self._host(
            config,
            uri,
            "rescue",
            domain_uuid=domain_uuid,
            kernel=config["rescue_kernel"],
            initrd=config["rescue_initrd"],
            cmdline=config.get("rescue_cmdline") or RESCUE_CMDLINE,
            deadline=self._deadline(config),
        )

    def unrescue_server(self, backend_id: str) -> None:
        """Power off the rescue system, then boot the server's normal definition. Again while
        leaving, or for a server not in rescue: nothing."""
        config, uri, domain_uuid = self._rescue_located(backend_id)
        self._host(config, uri, "unrescue", domain_uuid=domain_uuid, deadline=self._deadline(config))
