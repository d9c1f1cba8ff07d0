"""SSH keys, firewall rule sets and volumes, through the services of portal.compute.services (as the web pages)."""

from uuid import UUID

from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Router, Status

from portal.api.access import find_project, token_org_access, token_project_access, token_projects
from portal.api.errors import ApiProblem
from portal.api.idempotency import idempotency_claim
from portal.api.routers.common import api_url, token_of, zone_by_code
from portal.api.schemas import (
    FirewallIn,
    FirewallList,
    FirewallOut,
    FirewallRuleIn,
    FirewallRuleOut,
    OperationRef,
    Problem,
    SshKeyIn,
    SshKeyList,
    SshKeyOut,
    VolumeActionIn,
    VolumeIn,
    VolumeList,
    VolumeOut,
)
from portal.audit.services import client_ip
from portal.compute.models import (
    FirewallRule,
    FirewallRuleSet,
    Instance,
    InstanceStatus,
    Operation,
    SshKey,
    Volume,
)
from portal.compute.services import firewalls as firewall_services
from portal.compute.services import keys as key_services
from portal.compute.services import volumes as volume_services
from portal.tenancy.access import Perm

keys = Router(tags=["ssh keys"])
firewalls = Router(tags=["firewalls"])
volumes = Router(tags=["volumes"])
ERRORS = {401: Problem, 403: Problem, 404: Problem, 409: Problem, 422: Problem, 429: Problem}


def _scoped(request: HttpRequest, model, project: str | None):
    """Rows of `model` in one project (?project=) or every project the token reaches."""
    token = token_of(request)
    if project:
        found = find_project(token, project)
        token_project_access(token, found)
        return model.objects.filter(project=found)
    token_org_access(token, Perm.PROJECT_VIEW)
    return model.objects.filter(project__in=token_projects(token))


def _get(request: HttpRequest, queryset, pk, what: str, perm: Perm = Perm.PROJECT_VIEW):
    token = token_of(request)
    obj = queryset.select_related("project").filter(project__in=token_projects(token), pk=pk).first()
    if obj is None:
        raise Http404(f"No such {what}.")
    return obj, token_project_access(token, obj.project, perm)


def _reachable(request: HttpRequest, queryset):
    """Rows of the projects the token reaches: where a replayed request finds what it created."""
    return queryset.filter(project__in=token_projects(token_of(request)))


def _create_access(request: HttpRequest, project_ref):
    token = token_of(request)
    return token_project_access(token, find_project(token, project_ref), Perm.RESOURCE_CREATE)


# --- SSH keys ---------------------------------------------------------------------------------


def key_out(request: HttpRequest, key: SshKey) -> SshKeyOut:
    return SshKeyOut(
        id=key.pk,
        project=key.project_id,
        name=key.name,
        key_type=key.key_type,
        bits=key.bits,
        fingerprint=key.fingerprint,
        public_key=key.public_key,
        created_at=key.created_at,
        url=api_url(request, f"ssh-keys/{key.pk}"),
    )


@keys.get("/ssh-keys", response={200: SshKeyList, **ERRORS}, summary="List SSH keys")
def list_keys(request: HttpRequest, project: str | None = None):
    return SshKeyList(
        items=[key_out(request, k) for k in _scoped(request, SshKey, project).order_by("project", "name")]
    )


@keys.post("/ssh-keys", response={201: SshKeyOut, **ERRORS}, summary="Add an SSH key")
def add_key(request: HttpRequest, response: HttpResponse, body: SshKeyIn):
    with idempotency_claim(request, response) as claim:
        key = claim.replayed(_reachable(request, SshKey.objects))
        if key is None:
            access = _create_access(request, body.project)
            key = claim.remember(
                key_services.ssh_key_add(
                    access=access, name=body.name, public_key=body.public_key, request=request
                )
            )
    return Status(201, key_out(request, key))


@keys.get("/ssh-keys/{key_id}", response={200: SshKeyOut, **ERRORS}, summary="Get an SSH key")
def get_key(request: HttpRequest, key_id: int):
    key, _ = _get(request, SshKey.objects, key_id, "SSH key")
    return key_out(request, key)


@keys.delete("/ssh-keys/{key_id}", response={204: None, **ERRORS}, summary="Delete an SSH key")
def delete_key(request: HttpRequest, key_id: int):
    """Servers that already have the key keep it in authorized_keys."""
    key, access = _get(request, SshKey.objects, key_id, "SSH key", Perm.RESOURCE_OPERATE)
    key_services.ssh_key_delete(access=access, key=key, request=request)
    return Status(204, None)


# --- firewalls --------------------------------------------------------------------------------


def firewall_out(request: HttpRequest, rule_set: FirewallRuleSet) -> FirewallOut:
    return FirewallOut(
        id=rule_set.pk,
        project=rule_set.project_id,
        name=rule_set.name,
        rules=[
            FirewallRuleOut(
                id=r.pk,
                protocol=r.protocol,
                port_from=r.port_from,
                port_to=r.port_to,
                source=r.source,
                description=r.description,
            )
            for r in rule_set.rules.order_by("protocol", "port_from", "source")
        ],
        servers=[i.pk for i in firewall_services.servers_using(rule_set)],
        created_at=rule_set.created_at,
        url=api_url(request, f"firewalls/{rule_set.pk}"),
    )


@firewalls.get("/firewalls", response={200: FirewallList, **ERRORS}, summary="List firewall rule sets")
def list_firewalls(request: HttpRequest, project: str | None = None):
    rule_sets = _scoped(request, FirewallRuleSet, project).order_by("project", "name")
    return FirewallList(items=[firewall_out(request, r) for r in rule_sets])


@firewalls.post("/firewalls", response={201: FirewallOut, **ERRORS}, summary="Create a firewall rule set")
def create_firewall(request: HttpRequest, response: HttpResponse, body: FirewallIn):
    """Empty (drops all inbound traffic) or filled from a preset, as on the firewalls page."""
    with idempotency_claim(request, response) as claim:
        rule_set = claim.replayed(_reachable(request, FirewallRuleSet.objects))
        if rule_set is None:
            access = _create_access(request, body.project)
            rule_set = claim.remember(
                firewall_services.firewall_create(
                    access=access,
                    name=body.name,
                    preset=body.preset,
                    client_ip=client_ip(request),
                    request=request,
                )
            )
    return Status(201, firewall_out(request, rule_set))


@firewalls.get(
    "/firewalls/{firewall_id}", response={200: FirewallOut, **ERRORS}, summary="Get a firewall rule set"
)
def get_firewall(request: HttpRequest, firewall_id: int):
    rule_set, _ = _get(request, FirewallRuleSet.objects, firewall_id, "firewall")
    return firewall_out(request, rule_set)


@firewalls.delete(
    "/firewalls/{firewall_id}", response={204: None, **ERRORS}, summary="Delete a firewall rule set"
)
def delete_firewall(request: HttpRequest, firewall_id: int):
    """409 while a server uses it (terminated servers do not count)."""
    rule_set, access = _get(request, FirewallRuleSet.objects, firewall_id, "firewall", Perm.RESOURCE_OPERATE)
    firewall_services.firewall_delete(access=access, rule_set=rule_set, request=request)
    return Status(204, None)


@firewalls.post("/firewalls/{firewall_id}/rules", response={201: FirewallOut, **ERRORS}, summary="Add a rule")
def add_rule(request: HttpRequest, response: HttpResponse, firewall_id: int, body: FirewallRuleIn):
    """A rule the set already has (the same once normalised: 22-22 is 22, 203.0.113.4 is
    203.0.113.4/32) is a 409 that names it, and nothing changes. Servers launched before keep their
    rules."""
    rules = FirewallRule.objects.select_related("rule_set")
    with idempotency_claim(request, response) as claim:
        rule = claim.replayed(rules.filter(rule_set__project__in=token_projects(token_of(request))))
        if rule is None:
            rule_set, access = _get(
                request, FirewallRuleSet.objects, firewall_id, "firewall", Perm.RESOURCE_OPERATE
            )
            rule = claim.remember(
                firewall_services.firewall_rule_add(
                    access=access,
                    rule_set=rule_set,
                    protocol=body.protocol,
                    port_from=body.port_from,
                    port_to=body.port_to,
                    source=body.source,
                    description=body.description,
                    request=request,
                )
            )
    return Status(201, firewall_out(request, rule.rule_set))


@firewalls.delete(
    "/firewalls/{firewall_id}/rules/{rule_id}", response={204: None, **ERRORS}, summary="Remove a rule"
)
def delete_rule(request: HttpRequest, firewall_id: int, rule_id: int):
    rule_set, access = _get(request, FirewallRuleSet.objects, firewall_id, "firewall", Perm.RESOURCE_OPERATE)
    rule = rule_set.rules.filter(pk=rule_id).first()
    if rule is None:
        raise Http404("No such rule.")
    firewall_services.firewall_rule_delete(access=access, rule=rule, request=request)
    return Status(204, None)


# --- volumes ---------------------------------------------------------------------------------


def _volumes():
    return Volume.objects.existing().select_related("zone")


def _volume_operations(request: HttpRequest):
    """Operations on volumes of the projects the token reaches: where a replayed request finds
    the operation it started."""
    projects = token_projects(token_of(request))
    return Operation.objects.select_related("volume__zone").filter(volume__project__in=projects)


def _volumes_with_latest_operation(queryset):
    """Each volume with the id of its latest operation: one query for a list of any length."""
    latest = Operation.objects.filter(volume=OuterRef("pk")).order_by("-created_at").values("pk")[:1]
    return queryset.annotate(latest_operation=Subquery(latest))


def volume_out(request: HttpRequest, volume: Volume, operation_id=None) -> VolumeOut:
    """The volume, with the operation this answer is about (by default its latest)."""
    if operation_id is None:
        if hasattr(volume, "latest_operation"):
            operation_id = volume.latest_operation
        else:
            operation_id = volume.operations.order_by("-created_at").values_list("pk", flat=True).first()
    return VolumeOut(
        id=volume.pk,
        project=volume.project_id,
        name=volume.name,
        zone=volume.zone.code,
        size_gib=volume.size_gib,
        status=volume.status,
        attached_to=volume.attached_to_id,
        device=volume.device,
        fault_message=volume.fault_message,
        operation=OperationRef(id=operation_id, url=api_url(request, f"operations/{operation_id}"))
        if operation_id
        else None,
        created_at=volume.created_at,
        url=api_url(request, f"volumes/{volume.pk}"),
    )


def _accepted(request: HttpRequest, operation: Operation):
    volume = Volume.objects.select_related("zone").get(pk=operation.volume_id)
    return Status(202, volume_out(request, volume, operation.pk))


@volumes.get("/volumes", response={200: VolumeList, **ERRORS}, summary="List volumes")
def list_volumes(request: HttpRequest, project: str | None = None):
    rows = _scoped(request, Volume, project).existing().select_related("zone").order_by("project", "name")
    rows = _volumes_with_latest_operation(rows)
    return VolumeList(items=[volume_out(request, v) for v in rows])


@volumes.post("/volumes", response={202: VolumeOut, **ERRORS}, summary="Create a volume")
def create_volume(request: HttpRequest, response: HttpResponse, body: VolumeIn):
    """Same rules as the volumes page: placement policy (403 with the reason), quota, zone status,
    a zone that has volumes (409 "Volumes are not available in …"). Answered at once with status
    `creating` and the operation; the volume is `available` (and billed) once the cloud made it."""
    with idempotency_claim(request, response) as claim:
        operation = claim.replayed(_volume_operations(request))
        if operation is None:
            access = _create_access(request, body.project)
            operation = claim.remember(
                volume_services.volume_create(
                    access=access,
                    name=body.name,
                    zone=zone_by_code(body.zone),
                    size_gib=body.size_gib,
                    request=request,
                )
            )
    return _accepted(request, operation)


@volumes.get("/volumes/{volume_id}", response={200: VolumeOut, **ERRORS}, summary="Get a volume")
def get_volume(request: HttpRequest, volume_id: UUID):
    volume, _ = _get(request, _volumes(), volume_id, "volume")
    return volume_out(request, volume)


@volumes.post(
    "/volumes/{volume_id}/actions", response={202: VolumeOut, **ERRORS}, summary="Attach, detach or extend"
)
def volume_action(request: HttpRequest, response: HttpResponse, volume_id: UUID, body: VolumeActionIn):
    """`attach` (to a running or stopped server in the volume's zone), `detach`, or `extend` to a
    larger `size_gib`. 202 with the status under way and the operation; every reason a request
    is refused comes at once (409), and a refused request changes nothing."""
    with idempotency_claim(request, response) as claim:
        operation = claim.replayed(_volume_operations(request))
        if operation is None:
            operation = claim.remember(_act_on_volume(request, volume_id, body))
    return _accepted(request, operation)


def _act_on_volume(request: HttpRequest, volume_id: UUID, body: VolumeActionIn) -> Operation:
    volume, access = _get(request, _volumes(), volume_id, "volume", Perm.RESOURCE_OPERATE)
    if body.action == "detach":
        return volume_services.volume_detach(access=access, volume=volume, request=request)
    if body.action == "extend":
        if body.size_gib is None:
            raise _invalid("size_gib", "Give the new size in GiB.")
        return volume_services.volume_extend(
            access=access, volume=volume, size_gib=body.size_gib, request=request
        )
    instance = (
        Instance.objects.filter(project=access.project, pk=body.instance)
        .exclude(status=InstanceStatus.TERMINATED)
        .first()
        if body.instance
        else None
    )
    if instance is None:
        raise _invalid("instance", "Choose one of the project's servers.")
    return volume_services.volume_attach(access=access, volume=volume, instance=instance, request=request)


def _invalid(field: str, message: str) -> ApiProblem:
    return ApiProblem(422, message, kind="invalid-request", errors=[{"field": field, "message": message}])


@volumes.delete("/volumes/{volume_id}", response={202: VolumeOut, **ERRORS}, summary="Delete a volume")
def delete_volume(request: HttpRequest, volume_id: UUID):
    """409 while it is attached: detach it first. 202 with status `deleting`; billed until the
    cloud confirms it is gone, then `deleted` (and no longer listed)."""
    volume, access = _get(request, _volumes(), volume_id, "volume", Perm.RESOURCE_OPERATE)
    return _accepted(request, volume_services.volume_delete(access=access, volume=volume, request=request))
