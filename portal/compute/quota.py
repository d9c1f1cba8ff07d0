"""Quota is counted from the resources themselves, under a lock on the project row: nothing to drift."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Sum

from portal.compute.models import Action, Instance, Operation, Volume


@dataclass(frozen=True)
class Usage:
    instances: int = 0
    vcpus: int = 0
    ram_gib: int = 0
    volume_gib: int = 0


class QuotaExceeded(Exception):
    """The request does not fit; the message says what is left."""


def project_usage(project) -> Usage:
    counted = (
        Instance.objects.filter(project=project)
        .holding_quota()
        .aggregate(instances=Count("pk"), vcpus=Sum("flavor__vcpus"), ram=Sum("flavor__ram_gib"))
    )
    volumes = Volume.objects.filter(project=project).holding_quota().aggregate(size=Sum("size_gib"))
    # A volume being extended holds its new size already (it is billed at it only once it has it).
    growing = sum(
        max(0, params["size_gib"] - size)
        for params, size in Operation.objects.active()
        .filter(volume__project=project, action=Action.VOLUME_EXTEND)
        .values_list("params", "volume__size_gib")
    )
    return Usage(
        counted["instances"], counted["vcpus"] or 0, counted["ram"] or 0, (volumes["size"] or 0) + growing
    )


def check_quota(
    project, *, instances: int = 0, vcpus: int = 0, ram_gib: int = 0, volume_gib: int = 0
) -> None:
    """Raise QuotaExceeded unless the addition fits. Call with the project row locked."""
    used = project_usage(project)
    over = []
    for label, add, have, limit, unit in (
        ("instances", instances, used.instances, project.quota_instances, ""),
        ("vCPUs", vcpus, used.vcpus, project.quota_vcpus, ""),
        ("RAM", ram_gib, used.ram_gib, project.quota_ram_gib, " GiB"),
        ("volume storage", volume_gib, used.volume_gib, project.quota_volume_gib, " GiB"),
    ):
        if add and have + add > limit:
            over.append(f"{label}: needs {add}{unit}, {max(0, limit - have)}{unit} left of {limit}{unit}")
    if over:
        raise QuotaExceeded(
            "This is over the project's quota (" + "; ".join(over) + "). "
            "Terminate something you no longer need, or ask your cloud operator to raise the quota."
        )
