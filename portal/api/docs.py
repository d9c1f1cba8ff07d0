"""The interactive API docs page (/api/v1/docs): Swagger UI from static/vendor/swagger-ui/ (vendored
by portal/api/docsui/, nothing from a CDN), started by static/js/api-docs.js. The page runs under
the site's Content-Security-Policy: no inline script, settings passed as a JSON data block."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from ninja.openapi.docs import Swagger

if TYPE_CHECKING:
    from ninja import NinjaAPI


class PortalSwagger(Swagger):
    template = "api/docs.html"
    default_settings = {
        "layout": "BaseLayout",
        "deepLinking": True,
        "docExpansion": "list",
        "defaultModelsExpandDepth": 0,
        "displayRequestDuration": True,
        "filter": True,
        # A pasted token stays in this tab only, never in localStorage.
        "persistAuthorization": False,
        "validatorUrl": None,
    }

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        settings = self.settings | {"url": self.get_openapi_url(api, kwargs)}
        return render(request, self.template, {"api": api, "swagger_settings": settings})
