"""The public REST API at /api/v1/ (django-ninja): bearer tokens, problem+json errors, OpenAPI.

The interactive docs page is off here (`docs_url=None`); the schema is served at
/api/v1/openapi.json. A docs page built from vendored static files can be mounted later by setting
`docs_url` and `docs=` (ninja.Swagger/Redoc with local URLs).
"""

from __future__ import annotations

from ninja import NinjaAPI

from portal.api import errors
from portal.api.auth import TokenAuth
from portal.api.routers import budgets, catalog, instances, projects, resources

api = NinjaAPI(
    title="Nimbus Cloud API",
    version="1",
    description=(
        "Automate servers, volumes, SSH keys, firewalls, usage and budgets. Authenticate with a "
        "personal access token: `Authorization: Bearer npt_…`. Errors are application/problem+json. "
        "See docs/api.md for scopes, idempotency, rate limits and pagination."
    ),
    auth=TokenAuth(),
    docs_url=None,
    urls_namespace="api-v1",
)
errors.install(api)

api.add_router("", projects.router)
api.add_router("", catalog.router)
api.add_router("", instances.router)
api.add_router("", instances.operations)
api.add_router("", resources.keys)
api.add_router("", resources.firewalls)
api.add_router("", resources.volumes)
api.add_router("", budgets.router)
