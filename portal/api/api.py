"""The public REST API at /api/v1/ (django-ninja): bearer tokens, problem+json errors, OpenAPI.

The schema is served at /api/v1/openapi.json and the interactive docs page at /api/v1/docs (Swagger
UI from vendored static files, portal/api/docs.py); neither needs a token.
"""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI
from ninja.openapi.schema import OpenAPISchema

from portal.api import errors
from portal.api.auth import TokenAuth
from portal.api.docs import PortalSwagger
from portal.api.parser import JsonBodyParser
from portal.api.routers import budgets, catalog, consoles, instances, networks, projects, resources, snapshots


class PortalApi(NinjaAPI):
    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        return errors.document_problems(schema)

    def get_openapi_operation_id(self, operation) -> str:
        # "list_instances", not "portal_api_routers_instances_list_instances": the names client
        # generators and the docs page's links use. The view functions' names are unique.
        return operation.view_func.__name__


api = PortalApi(
    title="Nimbus Cloud API",
    version="1",
    description=(
        "Automate servers, volumes, private networks, SSH keys, firewalls, usage and budgets. Authenticate with a "
        "personal access token (create one under API tokens in the portal): "
        "`Authorization: Bearer npt_…`. A read token only reads; read-write may launch and change "
        "servers; the billing flag adds costs and budgets. Send bodies as `Content-Type: "
        "application/json`; unknown fields and values of the wrong JSON type are refused, not "
        "ignored or converted. Errors are application/problem+json. "
        "Send an `Idempotency-Key` header on POST to make retries safe (kept 24 h). Each token may "
        "make a limited number of requests a minute: a 429 says how long to wait in Retry-After. "
        "Lists are paged with an opaque `cursor`."
    ),
    auth=TokenAuth(),
    parser=JsonBodyParser(),
    docs_url="/docs",
    docs=PortalSwagger(),
    urls_namespace="api-v1",
)
errors.install(api)

api.add_router("", projects.router)
api.add_router("", catalog.router)
api.add_router("", instances.router)
api.add_router("", instances.operations)
api.add_router("", consoles.router)
api.add_router("", resources.keys)
api.add_router("", resources.firewalls)
api.add_router("", resources.volumes)
api.add_router("", networks.router)
api.add_router("", snapshots.router)
api.add_router("", budgets.router)
