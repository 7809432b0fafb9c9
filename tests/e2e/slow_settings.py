"""Settings of the end-to-end server that the slow-client and SIGTERM tests start.

Small on purpose: no database tables are needed (windows are anonymous), the in-memory
layer (one process), and a small ``MAX_BUFFERED_BYTES`` so that a socket that stops reading
overflows within a fraction of a second of a burst. ``SLOW_MAX_BUFFERED_BYTES`` in the
environment overrides it.
"""

import os

SECRET_KEY = "e2e-slow-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "floorchannels",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "tests.e2e.slow_asgi"
# Room on the hub's channel for the whole burst: the test is about sockets, not the layer.
CHANNEL_LAYERS = {
    "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 100_000}}
}
FLOORCHANNELS = {
    "MAX_BUFFERED_BYTES": int(os.environ.get("SLOW_MAX_BUFFERED_BYTES", str(256 * 1024))),
    "AUTODISCOVER": None,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"floorchannels": {"handlers": ["stderr"], "level": "INFO"}},
}
