import functools
from urllib.parse import unquote_plus

from django.urls import URLPattern, path, re_path

from portal.api import views
from portal.api.api import api
from portal.api.errors import PROBLEM_CONTENT_TYPE, not_found_view, problem

app_name = "api"

# The token pages (web, session) — the API itself is mounted by `api_patterns` below.
urlpatterns = [
    path("o/<slug:org_slug>/api-tokens/", views.tokens, name="tokens"),
    path("o/<slug:org_slug>/api-tokens/<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
]


def _nul_in_url(request) -> bool:
    return "\x00" in request.path_info or "\x00" in unquote_plus(request.META.get("QUERY_STRING", ""))


def _api_view(view):
    """What ninja leaves to the URL layer. A NUL (%00) in the path or query is a 400: no id, name or
    filter has one, and PostgreSQL can't compare text with it. ninja answers a method a path does
    not serve with a plain-text 405: make it a problem."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if _nul_in_url(request):
            return problem(
                400,
                "The URL contains a NUL character (%00); no id, name or filter has one.",
                kind="nul-in-url",
            )
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and response.get("Content-Type") != PROBLEM_CONTENT_TYPE:
            allowed = response.get("Allow", "")
            return problem(405, f"This path answers {allowed}.", headers={"Allow": allowed})
        return response

    return wrapper


def _api_urls():
    patterns, app, namespace = api.urls
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = _api_view(pattern.callback)
    return patterns, app, namespace


api_patterns = [
    path("api/v1/", _api_urls()),
    re_path(r"^api/v1/(?P<path>.*)$", not_found_view),
]
