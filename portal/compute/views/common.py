from __future__ import annotations

from django.http import Http404, HttpRequest

from portal.compute.models import Instance
from portal.core.context_processors import remember_access
from portal.tenancy.access import Access, Perm, project_access


def checked_project_access(
    request: HttpRequest, org_slug: str, project_slug: str, perm: Perm = Perm.PROJECT_VIEW
) -> Access:
    """`project_access` for the signed-in user, left on the request for the page frame to reuse."""
    access = project_access(request.user, org_slug, project_slug, perm)
    remember_access(request, access)
    return access


def get_instance(access: Access, instance_id) -> Instance:
    """An instance of the project in `access`, or 404 (also for terminated ones)."""
    instance = (
        Instance.objects.for_list()
        .select_related("firewall")
        .filter(project=access.project, pk=instance_id)
        .exclude(status="terminated")
        .first()
    )
    if instance is None:
        raise Http404("No such server.")
    instance.project = access.project  # loaded with its organization already
    return instance
