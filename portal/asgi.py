"""The ASGI application the portal is served by (uvicorn): Django for HTTP, Channels for the
websockets of the serial console (docs/console.md)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_http = get_asgi_application()  # sets Django up before the consumers are imported

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from portal.compute.consoles.routing import TicketOriginValidator, websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {"http": django_http, "websocket": TicketOriginValidator(URLRouter(websocket_urlpatterns))}
)
