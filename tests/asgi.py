from channels.routing import ProtocolTypeRouter, URLRouter

from floorchannels.routing import websocket_urlpatterns, worker_application

application = ProtocolTypeRouter(
    {"websocket": URLRouter(websocket_urlpatterns), "channel": worker_application}
)
