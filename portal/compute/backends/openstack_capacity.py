"""How much an OpenStack zone can still hold (`zone_capacity`): the project's quota and, where the
cloud shows them, the hypervisors' free figures. A mixin of OpenStackBackend (openstack.py), which
gives it `_zone`, `_connection` and `_cloud`."""

from __future__ import annotations

from openstack import exceptions as sdk_exceptions

from portal.compute.backends.base import ZoneCapacity
from portal.compute.backends.openstack_mapping import answered_by_the_api

# Hypervisor statistics were removed from Nova's API at microversion 2.88.
HYPERVISOR_STATISTICS_MICROVERSION = "2.87"


class OpenStackCapacity:
    def zone_capacity(self, zone: str) -> ZoneCapacity:
        """The smaller of what the project's quota still allows and what the hypervisors have free
        (when the cloud lets us see them: admin-only by default, and gone at microversion 2.88).

        Hypervisor figures cover the whole region, not just the availability zone, and ignore
        overcommit ratios. Zone settings `max_vcpus` / `max_ram_gib` cap both (and stand in when the
        quota is unlimited or not readable and the hypervisors are hidden; without them that case
        reports 0)."""
        return self._capacity(zone)[0]

    def _capacity(self, zone: str) -> tuple[ZoneCapacity, list[str]]:
        """The capacity, and what it could not count (for the zone's health line)."""
        settings = self._zone(zone)
        conn = self._connection(zone)
        candidates: list[tuple[int, int]] = []
        notes: list[str] = []
        with self._cloud("zone capacity", conn):
            try:
                absolute = conn.compute.get_limits().absolute
            except (sdk_exceptions.NotFoundException, sdk_exceptions.ForbiddenException) as error:
                if not answered_by_the_api(error):
                    raise  # a web page where Nova should be: the endpoint is wrong
                # A cloud without the call, or a policy that hides it: capacity comes from the rest.
                absolute = None
                notes.append(f"no limits call ({error.status_code}): the project's quota is not counted")
            if absolute is not None:
                cores, ram = absolute.total_cores, absolute.total_ram
                if cores is not None and ram is not None and cores >= 0 and ram >= 0:  # -1: unlimited
                    candidates.append(
                        (
                            cores - (absolute.total_cores_used or 0),
                            (ram - (absolute.total_ram_used or 0)) // 1024,
                        )
                    )
            response = conn.compute.get(
                "/os-hypervisors/statistics", microversion=HYPERVISOR_STATISTICS_MICROVERSION
            )
            if response.status_code == 200:
                stats = response.json()["hypervisor_statistics"]
                candidates.append(
                    (
                        stats["vcpus"] - stats["vcpus_used"],
                        (stats["memory_mb"] - stats["memory_mb_used"]) // 1024,
                    )
                )
            elif response.status_code not in (403, 404):
                sdk_exceptions.raise_from_response(response)
        if "max_vcpus" in settings and "max_ram_gib" in settings:
            candidates.append((int(settings["max_vcpus"]), int(settings["max_ram_gib"])))
        if not candidates:
            return ZoneCapacity(0, 0), notes
        capacity = ZoneCapacity(max(0, min(c[0] for c in candidates)), max(0, min(c[1] for c in candidates)))
        return capacity, notes
