"""Tell the residency app where instances and volumes live (for compliance findings)."""

from __future__ import annotations

from collections.abc import Iterable

from portal.compute.models import Instance, Volume
from portal.residency.findings import PlacedResource, placed_resources_provider


@placed_resources_provider
def instances_and_volumes(projects) -> Iterable[tuple[int, PlacedResource]]:
    ids = [p.pk for p in projects]
    for instance in (
        Instance.objects.visible().filter(project_id__in=ids).select_related("project__organization")
    ):
        yield (
            instance.project_id,
            PlacedResource("Server", instance.name, instance.zone_id, instance.get_absolute_url()),
        )
    for volume in Volume.objects.existing().filter(project_id__in=ids):
        yield volume.project_id, PlacedResource("Volume", volume.name, volume.zone_id)
