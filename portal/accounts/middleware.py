"""allauth's session activity tracking ("last seen" on the Active sessions page), throttled.

allauth's own middleware writes the session's row on every request (five statements: a
transaction, two reads, an update). Here it is written when the session is new to this process
group, when its IP or browser changed (so allauth's `session_client_changed` still fires at once),
and otherwise at most once a minute. What was written last is remembered in the shared cache, not
in the session (which would then be saved on every change).
"""

from __future__ import annotations

from allauth.account.adapter import get_adapter
from allauth.usersessions import app_settings
from allauth.usersessions.models import UserSession
from django.core.cache import cache
from django.http import HttpRequest

SEEN_EVERY_SECONDS = 60


class ThrottledUserSessionsMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        session = getattr(request, "session", None)
        user = getattr(request, "user", None)
        if app_settings.TRACK_ACTIVITY and session and session.session_key and user and user.is_authenticated:
            client = [
                user.pk,
                get_adapter().get_client_ip(request),
                request.META.get("HTTP_USER_AGENT", "")[:200],
            ]
            key = f"usersession-seen:{session.session_key}"
            if cache.get(key) != client:
                UserSession.objects.create_from_request(request)
                cache.set(key, client, SEEN_EVERY_SECONDS)
        return self.get_response(request)
