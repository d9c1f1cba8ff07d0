"""Every error of the API as application/problem+json (RFC 9457): type, title, status, detail, and
for invalid input `errors: [{"field", "message"}]`. A 500 says nothing about the code; it is logged."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from portal.compute.quota import QuotaExceeded
from portal.compute.services import ComputeRefused
from portal.residency.placement import PlacementDenied

logger = logging.getLogger("portal.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"
# Problem types are documented in docs/api.md under "Errors"; the URIs identify them, they are
# not fetched by clients.
TYPE_BASE = "https://docs.nimbus.invalid/api/problems/"


class ApiProblem(Exception):
    """Raise from an endpoint to answer a problem directly."""

    def __init__(self, status: int, detail: str, *, kind: str = "", errors: list[dict] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.kind, self.errors = status, detail, kind, errors


def problem(
    status: int,
    detail: str,
    *,
    kind: str = "",
    title: str = "",
    errors: list[dict] | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    phrase = HTTPStatus(status).phrase
    body: dict = {
        "type": TYPE_BASE + (kind or phrase.lower().replace(" ", "-").replace("'", "")),
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    response = HttpResponse(
        json.dumps(body, cls=DjangoJSONEncoder), status=status, content_type=PROBLEM_CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _field_name(loc: list | tuple) -> str:
    # ninja's locations start with the source ("body", "query", "path") and the parameter name.
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
        if len(parts) > 1 and parts[0] in ("body", "payload", "filters", "data"):
            parts = parts[1:]
    return ".".join(parts) or "body"


# Plainer words than pydantic's for what a client most often gets wrong; the rest keep pydantic's.
_MESSAGES = {
    "extra_forbidden": "Unknown field: this endpoint does not take it",
    "int_type": "Must be a JSON integer such as 2 (not a string, boolean or decimal)",
    "bool_type": "Must be true or false",
    "string_type": "Must be a JSON string",
    "model_attributes_type": "Must be a JSON object",
    "dict_type": "Must be a JSON object",
    "list_type": "Must be a JSON array",
}


def _message(error: dict) -> str:
    message = _MESSAGES.get(error.get("type", "")) or str(error.get("msg", "Invalid value."))
    message = message.removeprefix("Value error, ")
    return message if message.endswith(".") else message + "."


def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    # Every error pydantic found, in the path, query and body at once: not just the first.
    errors = [{"field": _field_name(e.get("loc", ())), "message": _message(e)} for e in exc.errors]
    return problem(
        422, "Some fields are missing or invalid; see errors.", kind="invalid-request", errors=errors
    )


def _parser_problem(exc: HttpError) -> ApiProblem | None:
    # ninja wraps what the body parser raises (portal.api.parser) in a 400 of its own.
    return exc.__cause__ if isinstance(exc.__cause__, ApiProblem) else None


def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if cause := _parser_problem(exc):
        return api_problem(request, cause)
    if isinstance(exc, AuthenticationError):
        return problem(
            401,
            str(exc) if str(exc) != "Unauthorized" else "Send a valid API token.",
            kind="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    if isinstance(exc, Throttled):
        limit = getattr(exc, "limit", None)
        detail = "Too many requests" + (f": this token may make {limit} a minute" if limit else "")
        return problem(
            429,
            detail + f". Try again in {exc.wait} s.",
            kind="rate-limited",
            headers={"Retry-After": str(exc.wait or 1)},
        )
    return problem(exc.status_code, str(exc))


def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    # The message names the kind of object only ("No such server."): the same for another
    # organization's id as for one that does not exist.
    text = str(exc)
    return problem(404, text if text.startswith("No such") else "Not found.", kind="not-found")


def forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return problem(403, str(exc) or "You may not do this.", kind="forbidden")


def refused(request: HttpRequest, exc: ComputeRefused) -> HttpResponse:
    status = status_for(exc)  # invalid values are 422 like schema errors; rules keep 403, 409
    # Every problem, also those about the request as a whole (field null): all reasons at once.
    errors = [{"field": p.field, "message": p.message} for p in exc.problems]
    if len(exc.problems) == 1:
        detail = exc.message
    elif status == 422:
        detail = "Some fields are missing or invalid; see errors."
    else:
        detail = " ".join(p.message for p in exc.problems)
    kind = "refused" if status != 422 else "invalid-request"
    return problem(status, detail, kind=kind, errors=errors or None)


def quota_exceeded(request: HttpRequest, exc: QuotaExceeded) -> HttpResponse:
    return problem(403, str(exc), kind="quota-exceeded", title="Over quota")


def placement_denied(request: HttpRequest, exc: PlacementDenied) -> HttpResponse:
    reason = exc.decision.reason
    return problem(
        403,
        reason,
        kind="placement-denied",
        title="Placement denied",
        errors=[{"field": "zone", "message": reason}],
    )


def api_problem(request: HttpRequest, exc: ApiProblem) -> HttpResponse:
    return problem(exc.status, exc.detail, kind=exc.kind, errors=exc.errors)


def body_too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return problem(
        413,
        f"The request body is too large: this API takes at most {limit:,} bytes ({limit / 2**20:.1f} MiB).",
        kind="body-too-large",
    )


def malformed(request: HttpRequest, exc: SuspiciousOperation | BadRequest) -> HttpResponse:
    # Django answers these 400 outside a view (too many query parameters, a broken header); the
    # reason is for our logs, as Django's own handler keeps it.
    logger.warning("Malformed API request %s %s: %s", request.method, request.path, exc)
    return problem(400, "The request is malformed (its headers or query string).")


def status_for(error: Exception) -> int:
    """The status the handlers `install`s answer `error` with: a 4xx for a refusal, else 500."""
    match error:
        case ApiProblem():
            return error.status
        case HttpError() if _parser_problem(error):
            return _parser_problem(error).status
        case HttpError():
            return error.status_code
        case RequestDataTooBig():
            return 413
        case SuspiciousOperation() | BadRequest():
            return 400
        case ComputeRefused():
            return 422 if error.status == 400 else error.status
        case Http404():
            return 404
        case PermissionDenied() | QuotaExceeded() | PlacementDenied():
            return 403
    return 500


def server_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("API error on %s %s", request.method, request.path, exc_info=exc)
    return problem(
        500,
        "Something went wrong on our side. It has been logged; please try again later.",
        kind="server-error",
    )


def install(api) -> None:
    api.add_exception_handler(ValidationError, validation_error)
    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(PermissionDenied, forbidden)
    api.add_exception_handler(ComputeRefused, refused)
    api.add_exception_handler(QuotaExceeded, quota_exceeded)
    api.add_exception_handler(PlacementDenied, placement_denied)
    api.add_exception_handler(ApiProblem, api_problem)
    api.add_exception_handler(RequestDataTooBig, body_too_large)
    api.add_exception_handler(SuspiciousOperation, malformed)
    api.add_exception_handler(BadRequest, malformed)
    api.add_exception_handler(Exception, server_error)


def _documented(status: int) -> dict:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def document_problems(schema: dict) -> dict:
    """ninja documents every response as application/json; the errors are problem+json. Answers
    the routers don't declare: a malformed request (400) on any path; on a POST, a malformed
    Idempotency-Key (400); where there is a body, one that is not JSON (400), too large (413) or
    not sent as application/json (415)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            for status, response in responses.items():
                content = response.get("content", {})
                if int(status) >= 400 and "application/json" in content:
                    content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
            statuses = [400] + ([413, 415] if "requestBody" in operation else [])
            for status in statuses:
                responses.setdefault(status, _documented(status))
    return schema


def not_found_view(request: HttpRequest, path: str = "") -> HttpResponse:
    """Any other path under /api/v1/: a problem, not the web portal's HTML page."""
    return problem(404, "No such endpoint; see /api/v1/openapi.json.", kind="not-found")
