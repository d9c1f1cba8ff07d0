"""Servers: list (filters, cursor pagination), launch N at once, read, act on, terminate; and the
operations that follow each change. Everything goes through portal.compute.services."""

import base64
import binascii
import json
from datetime import datetime
from urllib.parse import urlencode
from uuid import UUID

from django.db.models import F, Q
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Field as NinjaField
from ninja import Query, Router, Schema, Status

from portal.api.access import find_project, token_org_access, token_project_access, token_projects
from portal.api.errors import ApiProblem
from portal.api.idempotency import idempotency_claim
from portal.api.routers.common import (
    api_url,
    get_instance,
    instance_out,
    operation_out,
    operation_ref,
    token_of,
)
from portal.api.schemas import (
    ActionIn,
    ActionOut,
    FirewallSetIn,
    FirewallSetOut,
    InstanceOut,
    InstancePage,
    LaunchedInstance,
    LaunchedVolume,
    LaunchIn,
    LaunchOut,
    Problem,
    ProtectionIn,
    ReverseDnsIn,
)
from portal.api.schemas_operations import OperationOut
from portal.catalog.models import Flavor, Image, Zone
from portal.compute import services
from portal.compute.models import (
    Action,
    FirewallRuleSet,
    Instance,
    InstanceStatus,
    LaunchBatch,
    Operation,
    SshKey,
    Volume,
)
from portal.compute.services.instance_firewall import instance_firewall_set
from portal.compute.services.networks import launch_networks_find
from portal.lib.ids import as_id
from portal.tenancy.access import Perm

router = Router(tags=["instances"])
operations = Router(tags=["operations"])

ERRORS = {401: Problem, 403: Problem, 404: Problem, 409: Problem, 422: Problem, 429: Problem}
MAX_LIMIT = 100


class InstanceFilters(Schema):
    project: str | None = NinjaField(None, description="Project id or slug.")
    status: InstanceStatus | None = None
    zone: str | None = NinjaField(None, description="Zone code.")
    name: str | None = NinjaField(None, max_length=63, description="Part of the name.")
    cursor: str | None = None
    limit: int = NinjaField(50, ge=1, le=MAX_LIMIT)


def _encode_cursor(instance: Instance) -> str:
    raw = json.dumps([instance.created_at.isoformat(), str(instance.pk)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, pk = json.loads(raw)
        return datetime.fromisoformat(created), UUID(pk)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ApiProblem(
            422,
            "The cursor is not one this API gave out; start again without it.",
            kind="invalid-request",
            errors=[{"field": "cursor", "message": "Use the next_cursor of the previous page."}],
        ) from None


@router.get("/instances", response={200: InstancePage, **ERRORS}, summary="List servers")
def list_instances(request: HttpRequest, filters: Query[InstanceFilters]):
    """Newest first; terminated servers are not listed. Follow `next` until it is null."""
    token = token_of(request)
    if filters.project:
        project = find_project(token, filters.project)
        token_project_access(token, project)
        instances = Instance.objects.filter(project=project)
    else:
        token_org_access(token, Perm.PROJECT_VIEW)
        instances = Instance.objects.filter(project__in=token_projects(token))
    instances = instances.visible().with_catalog().order_by("-created_at", "-id")
    if filters.status:
        instances = instances.filter(status=filters.status)
    if filters.zone:
        instances = instances.filter(zone__code=filters.zone)
    if filters.name:
        instances = instances.filter(name__icontains=filters.name)
    if filters.cursor:
        created, pk = _decode_cursor(filters.cursor)
        instances = instances.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=pk))
    rows = list(instances[: filters.limit + 1])
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    cursor = _encode_cursor(rows[-1]) if more else None
    next_url = None
    if cursor:
        query = {k: v for k, v in filters.dict().items() if v not in (None, "") and k != "cursor"}
        next_url = api_url(request, "instances") + "?" + urlencode(query | {"cursor": cursor})
    return InstancePage(items=[instance_out(request, i) for i in rows], next_cursor=cursor, next=next_url)


def _lookup_error(field: str, message: str) -> ApiProblem:
    return ApiProblem(422, message, kind="invalid-request", errors=[{"field": field, "message": message}])


def _image(ref: int | str, zone: Zone | None, project) -> Image | None:
    text = str(ref).strip()
    images = Image.objects.for_project(project)
    if as_id(text) is not None:
        images = images.filter(pk=as_id(text))
    else:
        # By name, the public catalog's image comes first: a project's own image (a snapshot
        # someone named "Debian 13") is launched by its id, never instead of the catalog's.
        images = images.filter(name=text).order_by(F("project").asc(nulls_first=True), "pk")
    # Names are not unique across the catalog: prefer the one offered in the chosen zone.
    return (images.filter(zones=zone).first() if zone else None) or images.first()


def _ssh_keys(project, refs: list[int | str]) -> tuple[tuple[SshKey, ...], list[services.Problem]]:
    keys, problems = [], []
    for ref in refs:
        text = str(ref).strip()
        lookup = Q(pk=as_id(text)) if as_id(text) is not None else Q(name=text)
        key = SshKey.objects.filter(lookup, project=project).first()
        if key is None:
            problems.append(services.Problem("ssh_keys", f"The project has no SSH key “{text[:80]}”."))
        else:
            keys.append(key)
    return tuple(keys), problems


def _existing_volumes(project, refs: list[str]) -> tuple[tuple[Volume, ...], list[services.Problem]]:
    """The project's volumes by id. Another project's is answered as one that does not exist: the
    same words, the same 404, so that an id says nothing about other projects."""
    found, problems = {}, []
    for ref in refs:
        text = str(ref).strip()
        try:
            pk = UUID(text)
        except ValueError:
            pk = None
        volume = (
            Volume.objects.existing()
            .select_related("zone", "attached_to", "pending_server")
            .filter(project=project, pk=pk)
            .first()
            if pk
            else None
        )
        if volume is None:
            problems.append(
                services.Problem("existing_volumes", f"No volume “{text[:40]}” in this project.", 404)
            )
        else:
            found[volume.pk] = volume
    return tuple(found.values()), problems


def _launch_request(project, body: LaunchIn) -> services.LaunchRequest:
    """The launch the body asks for. A name that finds nothing is a problem like a broken rule:
    one 422 lists them all, with every rule the values that were found break."""
    problems: list[services.Problem] = []
    zone = Zone.objects.select_related("region").filter(code=body.zone, region__is_active=True).first()
    if zone is None:
        problems.append(
            services.Problem("zone", f"No zone “{body.zone[:40]}”; GET /catalog/zones lists them.")
        )
    flavor = Flavor.objects.filter(code=body.flavor, is_active=True).first()
    if flavor is None:
        problems.append(
            services.Problem("flavor", f"No size “{body.flavor[:40]}”; GET /catalog/flavors lists them.")
        )
    image = _image(body.image, zone, project)
    if image is None:
        problems.append(
            services.Problem("image", f"No image “{str(body.image)[:80]}”; GET /catalog/images lists them.")
        )
    ssh_keys, key_problems = _ssh_keys(project, body.ssh_keys)
    problems += key_problems
    existing_volumes, volume_problems = _existing_volumes(project, body.existing_volumes)
    problems += volume_problems
    networks = launch_networks_find(project, body.networks)
    problems += networks.problems
    new_volumes = tuple(
        services.NewVolume(name=v.name.strip(), size_gib=v.size_gib) for v in body.new_volumes
    )
    firewall = None
    if body.firewall is not None:
        firewall = FirewallRuleSet.objects.filter(project=project, pk=body.firewall).first()
        if firewall is None:
            problems.append(services.Problem("firewall", "Choose a firewall of this project."))
    problems += services.launch_problems(
        project,
        name=body.name,
        count=body.count,
        zone=zone,
        flavor=flavor,
        image=image,
        root_disk_gib=body.root_disk_gib,
        user_data=body.user_data,
        ssh_keys=ssh_keys,
        firewall=firewall,
        new_volumes=new_volumes,
        existing_volumes=existing_volumes,
        networks=networks.networks,
    )
    if problems:
        raise services.ComputeRefused.of(problems)
    return services.LaunchRequest(
        name=body.name,
        count=body.count,
        zone=zone,
        flavor=flavor,
        image=image,
        # The launch wizard's default, so both paths build the same servers.
        root_disk_gib=body.root_disk_gib or max(flavor.root_disk_gib, image.min_disk_gib),
        ssh_keys=ssh_keys,
        firewall=firewall,
        user_data=body.user_data,
        termination_protection=body.termination_protection,
        new_volumes=new_volumes,
        existing_volumes=existing_volumes,
        networks=networks.networks,
    )


@router.post("/instances", response={202: LaunchOut, **ERRORS}, summary="Launch servers")
def launch_instances(request: HttpRequest, response: HttpResponse, body: LaunchIn):
    """Launch `count` servers; 202 with one operation per server to poll. Same rules as the launch
    wizard: placement policy, quota, budget guard. Send an Idempotency-Key to retry safely."""
    token = token_of(request)
    with idempotency_claim(request, response) as claim:
        batch = claim.replayed(LaunchBatch.objects.filter(project__in=token_projects(token)))
        warning = None  # given with the first answer only: the batch does not keep it
        if batch is None:
            project = find_project(token, body.project)
            access = token_project_access(token, project, Perm.RESOURCE_CREATE)
            batch = claim.remember(
                services.instance_launch(access=access, req=_launch_request(project, body), request=request)
            )
            warning = batch.budget_warning or None
    operations_by_instance = {
        op.instance_id: op
        for op in Operation.objects.filter(instance__batch=batch, action=Action.CREATE).select_related(
            "instance"
        )
    }
    volumes = _launch_volumes(request, batch)
    launched = [
        LaunchedInstance(
            id=op.instance.pk,
            name=op.instance.name,
            status=op.instance.status,
            url=api_url(request, f"instances/{op.instance.pk}"),
            operation=operation_ref(request, op),
            volumes=volumes.get(op.instance.pk, []),
        )
        for op in sorted(operations_by_instance.values(), key=lambda op: _name_order(op.instance.name))
    ]
    return Status(202, LaunchOut(batch=batch.pk, budget_warning=warning, instances=launched))


def _launch_volumes(request: HttpRequest, batch: LaunchBatch) -> dict:
    """The volumes chosen with the launch, by server: waiting for it, or attached to it by now."""
    rows = list(
        Volume.objects.existing()
        .filter(Q(pending_server__batch=batch) | Q(attached_to__batch=batch))
        .order_by("name")
    )
    creations = {
        op.volume_id: op
        for op in Operation.objects.filter(
            volume__in=rows, action=Action.VOLUME_CREATE, params__has_key="launch_server"
        )
    }
    by_server = {}
    for volume in rows:
        server = volume.pending_server_id or volume.attached_to_id
        creation = creations.get(volume.pk)
        by_server.setdefault(server, []).append(
            LaunchedVolume(
                id=volume.pk,
                name=volume.name,
                size_gib=volume.size_gib,
                status=volume.status,
                url=api_url(request, f"volumes/{volume.pk}"),
                operation=operation_ref(request, creation) if creation else None,
            )
        )
    return by_server


def _name_order(name: str) -> tuple[str, int]:
    base, _, number = name.rpartition("-")
    return (base, int(number)) if number.isdigit() else (name, 0)


@router.get("/instances/{instance_id}", response={200: InstanceOut, **ERRORS}, summary="Get a server")
def get_instance_detail(request: HttpRequest, instance_id: UUID):
    """A terminated server is still answered (status `terminated`, no addresses), as its web page
    is; it is no longer listed, and actions, PATCH and DELETE on it are a 404."""
    instance, _ = get_instance(request, instance_id, terminated=True)
    return instance_out(request, instance)


@router.post(
    "/instances/{instance_id}/actions",
    response={202: ActionOut, **ERRORS},
    summary="Start, stop, reboot, resize, rescue or leave rescue",
)
def instance_action(request: HttpRequest, response: HttpResponse, instance_id: UUID, body: ActionIn):
    token = token_of(request)
    with idempotency_claim(request, response) as claim:
        operation = claim.replayed(Operation.objects.filter(instance__project__in=token_projects(token)))
        if operation is None:
            instance, access = get_instance(request, instance_id, Perm.RESOURCE_OPERATE)
            flavor = None
            if body.action == Action.RESIZE:
                flavor = Flavor.objects.filter(code=body.flavor or "").first()
                if flavor is None:
                    raise _lookup_error(
                        "flavor", "Choose the new size: a flavor code from GET /catalog/flavors."
                    )
            operation = claim.remember(
                services.instance_action(
                    access=access, instance=instance, action=body.action, flavor=flavor, request=request
                )
            )
    return Status(202, _action_out(request, operation))


@router.delete("/instances/{instance_id}", response={202: ActionOut, **ERRORS}, summary="Terminate a server")
def terminate_instance(request: HttpRequest, instance_id: UUID):
    """The DELETE is the confirmation the web page asks for by typing the name. Termination
    protection still applies: 409 until it is turned off (PATCH termination_protection=false)."""
    instance, access = get_instance(request, instance_id, Perm.RESOURCE_OPERATE)
    operation = services.instance_action(
        access=access, instance=instance, action=Action.TERMINATE, confirm_name=instance.name, request=request
    )
    return Status(202, _action_out(request, operation))


def _action_out(request: HttpRequest, operation: Operation) -> ActionOut:
    instance = Instance.objects.with_catalog().get(pk=operation.instance_id)
    return ActionOut(operation=operation_ref(request, operation), instance=instance_out(request, instance))


@router.patch(
    "/instances/{instance_id}", response={200: InstanceOut, **ERRORS}, summary="Change termination protection"
)
def update_instance(request: HttpRequest, instance_id: UUID, body: ProtectionIn):
    instance, access = get_instance(request, instance_id, Perm.RESOURCE_OPERATE)
    services.instance_set_protection(
        access=access, instance=instance, protected=body.termination_protection, request=request
    )
    instance.refresh_from_db()
    return instance_out(request, instance)


@router.put(
    "/instances/{instance_id}/reverse-dns",
    response={200: InstanceOut, **ERRORS},
    summary="Set a server's reverse DNS name",
)
def set_reverse_dns(request: HttpRequest, instance_id: UUID, body: ReverseDnsIn):
    """The name the server's public address resolves back to (its PTR record, published by the
    operator's DNS). 409 while the server has no public address; an empty name removes it."""
    instance, access = get_instance(request, instance_id, Perm.RESOURCE_OPERATE)
    instance = services.instance_set_reverse_dns(
        access=access, instance=instance, name=body.name, request=request
    )
    return instance_out(request, instance)


@router.put(
    "/instances/{instance_id}/firewall",
    response={200: FirewallSetOut, 202: FirewallSetOut, **ERRORS},
    summary="Attach, switch or detach a server's firewall",
)
def set_instance_firewall(request: HttpRequest, instance_id: UUID, body: FirewallSetIn):
    """The server's firewall becomes `firewall` (null: none, all inbound traffic allowed), on a
    running or stopped server; 202 with the operation that applies its rules in the cloud. The same
    firewall again changes nothing (200, with the apply still under way if any). A firewall of
    another project is refused (422, as any invalid field); a zone whose cloud applies no rules a 409."""
    instance, access = get_instance(request, instance_id, Perm.RESOURCE_OPERATE)
    rule_set = None
    if body.firewall is not None:
        rule_set = FirewallRuleSet.objects.filter(project=instance.project, pk=body.firewall).first()
        if rule_set is None:
            raise services.ComputeRefused("Choose one of the project's firewalls.", "firewall")
    before = instance.firewall_id
    operation = instance_firewall_set(access=access, instance=instance, rule_set=rule_set, request=request)
    instance = Instance.objects.with_catalog().get(pk=instance.pk)
    out = FirewallSetOut(
        operation=operation_ref(request, operation) if operation else None,
        instance=instance_out(request, instance),
    )
    return Status(202 if instance.firewall_id != before else 200, out)


@operations.get(
    "/operations/{operation_id}", response={200: OperationOut, **ERRORS}, summary="Get an operation"
)
def get_operation(request: HttpRequest, operation_id: UUID):
    """Poll this until `state` is succeeded or failed (every 2 to 5 s is plenty). A server's
    operation names its `instance`, a volume's its `volume`, a private network's its `network`."""
    token = token_of(request)
    projects = token_projects(token)
    operation = (
        Operation.objects.select_related("instance__project", "volume__project", "network__project")
        .filter(
            Q(instance__project__in=projects)
            | Q(volume__project__in=projects)
            | Q(network__project__in=projects),
            pk=operation_id,
        )
        .first()
    )
    if operation is None:
        raise Http404("No such operation.")
    token_project_access(token, operation.target.project)
    return operation_out(request, operation)
