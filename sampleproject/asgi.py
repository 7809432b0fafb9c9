import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sampleproject.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

if settings.DEBUG:
    # The demo serves its static files (the JS client) itself; a real deployment serves
    # them with collectstatic and a web server or WhiteNoise.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from floorchannels.routing import websocket_urlpatterns, worker_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # floorchannels checks Origin against ALLOWED_HOSTS and loads the session itself.
        "websocket": URLRouter(websocket_urlpatterns),
        "channel": worker_application,
    }
)
