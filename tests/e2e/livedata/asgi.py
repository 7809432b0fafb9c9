"""The live-data project's ASGI application: Django over HTTP (serving its static files
itself, the client bundle and the admin's CSS), floorchannels over websockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.livedata.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from floorchannels.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {"http": ASGIStaticFilesHandler(django_asgi_app), "websocket": URLRouter(websocket_urlpatterns)}
)
