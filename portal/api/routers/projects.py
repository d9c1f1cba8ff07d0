"""The projects a token can reach: its organization's, or the one it is bound to."""

from django.http import HttpRequest
from ninja import Router

from portal.api.access import find_project, token_org_access, token_project_access, token_projects
from portal.api.routers.common import api_url, quota_out, token_of
from portal.api.schemas import Problem, ProjectList, ProjectOut

router = Router(tags=["projects"])
ERRORS = {401: Problem, 403: Problem, 404: Problem, 429: Problem}


def project_out(request: HttpRequest, project) -> ProjectOut:
    quota, used = quota_out(project)
    return ProjectOut(
        id=project.pk,
        slug=project.slug,
        name=project.name,
        description=project.description,
        default_zone=project.default_zone.code if project.default_zone else None,
        quota=quota,
        used=used,
        url=api_url(request, f"projects/{project.pk}"),
    )


@router.get("/projects", response={200: ProjectList, **ERRORS}, summary="List projects")
def list_projects(request: HttpRequest):
    token = token_of(request)
    token_org_access(token)
    projects = token_projects(token).select_related("default_zone").order_by("name")
    return ProjectList(items=[project_out(request, p) for p in projects])


@router.get("/projects/{project_id}", response={200: ProjectOut, **ERRORS}, summary="Get a project")
def get_project(request: HttpRequest, project_id: str):
    """`project_id` is the id or the slug. Includes quotas and what is in use."""
    token = token_of(request)
    access = token_project_access(token, find_project(token, project_id))
    return project_out(request, access.project)
