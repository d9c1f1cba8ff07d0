from __future__ import annotations

from dataclasses import dataclass

from portal.tenancy.models import Project


@dataclass(frozen=True)
class QuotaLine:
    label: str
    used: int
    limit: int
    unit: str = ""

    @property
    def percent(self) -> int:
        if self.limit == 0:
            return 100 if self.used else 0
        return min(100, round(100 * self.used / self.limit))

    @property
    def level(self) -> str:
        return "danger" if self.percent >= 90 else "warning" if self.percent >= 70 else "ok"


def quota_usage(project: Project) -> list[QuotaLine]:
    """Each quota beside what the project uses now (counted from its resources)."""
    from portal.compute.quota import project_usage  # compute builds on tenancy, not the reverse

    used = project_usage(project)
    return [
        QuotaLine("Instances", used.instances, project.quota_instances),
        QuotaLine("vCPUs", used.vcpus, project.quota_vcpus),
        QuotaLine("RAM", used.ram_gib, project.quota_ram_gib, "GiB"),
        QuotaLine("Volume storage", used.volume_gib, project.quota_volume_gib, "GiB"),
    ]
