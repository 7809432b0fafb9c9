import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.spa.settings")
http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from floorchannels.routing import websocket_urlpatterns  # noqa: E402

# The rendered page loads the client bundle from /static/.
application = ProtocolTypeRouter(
    {"http": ASGIStaticFilesHandler(http), "websocket": URLRouter(websocket_urlpatterns)}
)
