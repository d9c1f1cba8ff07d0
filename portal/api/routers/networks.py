"""Private networks, through portal.compute.services.networks (as the web pages): the same roles,
audit and refusals; POSTs take an Idempotency-Key. Networks are free."""

from uuid import UUID

from django.db.models import OuterRef, Prefetch, Subquery
from django.http import HttpRequest, HttpResponse
from ninja import Router, Status

from portal.api.idempotency import idempotency_claim
from portal.api.routers.common import api_url, zone_by_code
from portal.api.routers.resources import (
    ERRORS,
    _create_access,
    _get,
    _invalid,
    _scoped,
    token_of,
    token_projects,
)
from portal.api.schemas import OperationRef
from portal.api.schemas_networks import NetworkActionIn, NetworkIn, NetworkList, NetworkOut, NetworkServerOut
from portal.compute.models import (
    PORT_PRESENT,
    Instance,
    InstanceStatus,
    Network,
    NetworkPort,
    Operation,
    PortStatus,
)
from portal.compute.services import networks as network_services
from portal.tenancy.access import Perm

router = Router(tags=["private networks"])
SHOWN = [*PORT_PRESENT, PortStatus.ERROR]


def _networks():
    ports = NetworkPort.objects.filter(status__in=SHOWN).select_related("instance").order_by("instance__name")
    latest = Operation.objects.filter(network=OuterRef("pk")).order_by("-created_at").values("pk")[:1]
    return (
        Network.objects.existing()
        .select_related("zone")
        .prefetch_related(Prefetch("ports", queryset=ports, to_attr="shown_ports"))
        .annotate(latest_operation=Subquery(latest))
    )


def network_out(request: HttpRequest, network: Network, operation_id=None) -> NetworkOut:
    operation_id = operation_id or getattr(network, "latest_operation", None)
    return NetworkOut(
        id=network.pk,
        project=network.project_id,
        name=network.name,
        zone=network.zone.code,
        cidr=network.cidr,
        status=network.status,
        servers=[
            NetworkServerOut(
                instance=p.instance_id,
                name=p.instance.name,
                status=p.status,
                address=p.address,
                fault_message=p.fault_message,
            )
            for p in network.shown_ports
        ],
        fault_message=network.fault_message,
        operation=OperationRef(id=operation_id, url=api_url(request, f"operations/{operation_id}"))
        if operation_id
        else None,
        created_at=network.created_at,
        url=api_url(request, f"networks/{network.pk}"),
    )


def _operations(request: HttpRequest):
    """Operations on networks of the projects the token reaches: where a replay finds its own."""
    return Operation.objects.filter(network__project__in=token_projects(token_of(request)))


def _accepted(request: HttpRequest, operation: Operation):
    return Status(202, network_out(request, _networks().get(pk=operation.network_id), operation.pk))


@router.get("/networks", response={200: NetworkList, **ERRORS}, summary="List private networks")
def list_networks(request: HttpRequest, project: str | None = None):
    rows = (
        _networks().filter(pk__in=_scoped(request, Network, project).values("pk")).order_by("project", "name")
    )
    return NetworkList(items=[network_out(request, n) for n in rows])


@router.post("/networks", response={202: NetworkOut, **ERRORS}, summary="Create a private network")
def create_network(request: HttpRequest, response: HttpResponse, body: NetworkIn):
    """Same rules as the networks page: a private IPv4 `cidr` of /16 to /29 that overlaps none of
    the project's networks (every problem at once, 422/409), the residency policy (403 with the
    reason), a zone that has private networks (409 "Private networks are not available in …").
    202 with status `creating`; `available` once the cloud made it. Free of charge."""
    with idempotency_claim(request, response) as claim:
        operation = claim.replayed(_operations(request))
        if operation is None:
            access = _create_access(request, body.project)
            operation = claim.remember(
                network_services.network_create(
                    access=access,
                    name=body.name,
                    zone=zone_by_code(body.zone),
                    cidr=body.cidr,
                    request=request,
                )
            )
    return _accepted(request, operation)


@router.get("/networks/{network_id}", response={200: NetworkOut, **ERRORS}, summary="Get a private network")
def get_network(request: HttpRequest, network_id: UUID):
    network, _ = _get(request, _networks(), network_id, "network")
    return network_out(request, network)


@router.post(
    "/networks/{network_id}/actions",
    response={202: NetworkOut, **ERRORS},
    summary="Attach or detach a server",
)
def network_action(request: HttpRequest, response: HttpResponse, network_id: UUID, body: NetworkActionIn):
    """`attach` a running or stopped server of the network's zone (the cloud gives it an address
    inside the range), or `detach` it. 202 with the server's status under way and the operation;
    a refused request (409, every reason at once) changes nothing."""
    with idempotency_claim(request, response) as claim:
        operation = claim.replayed(_operations(request))
        if operation is None:
            network, access = _get(request, _networks(), network_id, "network", Perm.RESOURCE_OPERATE)
            instance = (
                Instance.objects.filter(project=access.project, pk=body.instance)
                .exclude(status=InstanceStatus.TERMINATED)
                .first()
            )
            if instance is None:
                raise _invalid("instance", "Choose one of the project's servers.")
            change = (
                network_services.network_attach
                if body.action == "attach"
                else network_services.network_detach
            )
            operation = change(access=access, network=network, instance=instance, request=request)
            if operation is None:  # a server still waiting to join (chosen at launch): dropped
                return Status(202, network_out(request, _networks().get(pk=network.pk)))
            claim.remember(operation)
    return _accepted(request, operation)


@router.delete(
    "/networks/{network_id}", response={202: NetworkOut, **ERRORS}, summary="Delete a private network"
)
def delete_network(request: HttpRequest, network_id: UUID):
    """409 while servers are on it (they are named): detach them first. 202 with status
    `deleting`, then `deleted` (and no longer listed)."""
    network, access = _get(request, _networks(), network_id, "network", Perm.RESOURCE_OPERATE)
    return _accepted(
        request, network_services.network_delete(access=access, network=network, request=request)
    )
