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
    """Each quota beside what the project uses now.

    Usage is counted from the resources themselves; until the compute app exists the project
    holds none, so every line reads 0.
    """
    used = {"instances": 0, "vcpus": 0, "ram_gib": 0, "volume_gib": 0}
    return [
        QuotaLine("Instances", used["instances"], project.quota_instances),
        QuotaLine("vCPUs", used["vcpus"], project.quota_vcpus),
        QuotaLine("RAM", used["ram_gib"], project.quota_ram_gib, "GiB"),
        QuotaLine("Volume storage", used["volume_gib"], project.quota_volume_gib, "GiB"),
    ]
