"""Websocket routes, mounted by portal.asgi."""

from __future__ import annotations

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from portal.compute.consoles.consumers import GraphicalConsoleConsumer, SerialConsoleConsumer

websocket_urlpatterns = [
    path("ws/servers/<uuid:instance_id>/console/", SerialConsoleConsumer.as_asgi()),
    path("ws/servers/<uuid:instance_id>/graphical-console/", GraphicalConsoleConsumer.as_asgi()),
]


class TicketOriginValidator(OriginValidator):
    """A browser's websocket must come from one of our own pages (ALLOWED_HOSTS, as Channels'
    AllowedHostsOriginValidator checks). A client that sends no Origin (a script using the API's
    ticket) is let through: the one-time ticket, not a cookie, is what opens a console, so a page
    of another site has nothing to replay."""

    def __init__(self, application) -> None:
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:
            allowed = ["localhost", "127.0.0.1", "[::1]"]
        super().__init__(application, allowed)

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or super().valid_origin(parsed_origin)
