from __future__ import annotations

from django.http import Http404

from portal.compute.models import Instance
from portal.tenancy.access import Access


def get_instance(access: Access, instance_id) -> Instance:
    """An instance of the project in `access`, or 404 (also for terminated ones)."""
    instance = (
        Instance.objects.with_catalog()
        .select_related("firewall")
        .filter(project=access.project, pk=instance_id)
        .exclude(status="terminated")
        .first()
    )
    if instance is None:
        raise Http404("No such server.")
    instance.project = access.project  # loaded with its organization already
    return instance
