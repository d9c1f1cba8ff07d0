"""Request bodies: a JSON document sent as application/json, read strictly (RFC 8259).

ninja calls `parse_body` for an operation that takes a body, when the request has one, after the
token is checked. It turns any exception raised here into a 400 of its own; `errors.http_error`
answers the `ApiProblem` that caused it instead.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser

from portal.api.errors import ApiProblem

JSON_CONTENT_TYPE = "application/json"


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which of two equal keys wins (a proxy that checks the first and an
    # application that uses the last): a request with both is refused, not guessed at.
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"the key “{key[:40]}” appears twice in one object")
        seen.add(key)
    return dict(pairs)


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class JsonBodyParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        if request.content_type != JSON_CONTENT_TYPE:
            sent = f"“{request.content_type[:60]}”" if request.content_type else "no Content-Type"
            raise ApiProblem(
                415,
                f"The body is JSON only: send Content-Type: {JSON_CONTENT_TYPE} (this request had {sent}).",
                kind="unsupported-media-type",
            )
        try:
            return json.loads(request.body, object_pairs_hook=_object, parse_constant=_constant)
        except RecursionError:
            raise ApiProblem(400, "The request body nests too deeply.", kind="invalid-json") from None
        except ValueError as error:  # JSONDecodeError, bad UTF-8, an integer of thousands of digits
            raise ApiProblem(
                400, f"The request body is not valid JSON: {error}.", kind="invalid-json"
            ) from None
