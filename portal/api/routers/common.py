"""Lookups and serialisers shared by the routers."""

from django.http import Http404, HttpRequest
from django.urls import reverse

from portal.api.access import TokenAccess, token_project_access, token_projects
from portal.api.errors import ApiProblem
from portal.api.models import ApiToken
from portal.api.schemas import InstanceOut, OperationRef, QuotaOut
from portal.api.schemas_operations import OperationOut
from portal.catalog.models import Zone
from portal.compute.models import Instance, InstanceStatus, Operation
from portal.compute.quota import project_usage
from portal.tenancy.access import Perm


def api_url(request: HttpRequest, path: str) -> str:
    return request.build_absolute_uri(reverse("api-v1:api-root") + path)


def token_of(request: HttpRequest) -> ApiToken:
    return request.auth


def get_instance(
    request: HttpRequest, instance_id, perm: Perm = Perm.PROJECT_VIEW, *, terminated: bool = False
) -> tuple[Instance, TokenAccess]:
    """A server the token can reach, with the access for its project; else 404. A terminated one
    only with `terminated` (reading it): there is nothing left to act on."""
    token = token_of(request)
    instances = Instance.objects.with_catalog().select_related("project")
    if not terminated:
        instances = instances.exclude(status=InstanceStatus.TERMINATED)
    instance = instances.filter(project__in=token_projects(token), pk=instance_id).first()
    if instance is None:
        raise Http404("No such server.")
    return instance, token_project_access(token, instance.project, perm)


def zone_by_code(code: str, field: str = "zone") -> Zone:
    zone = Zone.objects.select_related("region").filter(code=code, region__is_active=True).first()
    if zone is None:
        raise ApiProblem(
            422,
            f"No zone “{code[:40]}”; GET /catalog/zones lists them.",
            kind="invalid-request",
            errors=[{"field": field, "message": "Choose one of the zones listed by GET /catalog/zones."}],
        )
    return zone


def quota_out(project) -> tuple[QuotaOut, QuotaOut]:
    used = project_usage(project)
    return (
        QuotaOut(
            instances=project.quota_instances,
            vcpus=project.quota_vcpus,
            ram_gib=project.quota_ram_gib,
            volume_gib=project.quota_volume_gib,
        ),
        QuotaOut(
            instances=used.instances, vcpus=used.vcpus, ram_gib=used.ram_gib, volume_gib=used.volume_gib
        ),
    )


def operation_ref(request: HttpRequest, operation: Operation) -> OperationRef:
    return OperationRef(id=operation.pk, url=api_url(request, f"operations/{operation.pk}"))


def operation_out(request: HttpRequest, operation: Operation) -> OperationOut:
    return OperationOut(
        id=operation.pk,
        action=operation.action,
        state=operation.state,
        instance=operation.instance_id,
        instance_url=api_url(request, f"instances/{operation.instance_id}")
        if operation.instance_id
        else None,
        volume=operation.volume_id,
        volume_url=api_url(request, f"volumes/{operation.volume_id}") if operation.volume_id else None,
        network=operation.network_id,
        network_url=api_url(request, f"networks/{operation.network_id}") if operation.network_id else None,
        created_at=operation.created_at,
        finished_at=operation.finished_at,
        error_message=operation.error_message,
        url=api_url(request, f"operations/{operation.pk}"),
    )


def instance_out(request: HttpRequest, instance: Instance) -> InstanceOut:
    return InstanceOut(
        id=instance.pk,
        name=instance.name,
        project=instance.project_id,
        status=instance.status,
        zone=instance.zone.code,
        flavor=instance.flavor.code,
        image=instance.image.name,
        image_id=instance.image_id,
        root_disk_gib=instance.root_disk_gib,
        addresses=list(instance.addresses or []),
        ssh_command=instance.ssh_command,
        firewall=instance.firewall_id,
        firewall_state=instance.firewall_state,
        firewall_applied_at=instance.firewall_applied_at,
        firewall_message=instance.firewall_message,
        termination_protection=instance.termination_protection,
        reverse_dns=instance.reverse_dns,
        fault_message=instance.fault_message,
        batch=instance.batch_id,
        created_at=instance.created_at,
        running_since=instance.running_since,
        url=api_url(request, f"instances/{instance.pk}"),
    )
