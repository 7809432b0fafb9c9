"""Settings of the single-page app's end-to-end project: tests.settings, plus DRF tokens,
the key view, a Redis layer (its history outlives a restart of daphne), the app's origin
in ALLOWED_ORIGINS, and a page Django renders, for sessions.

``SPA_DB`` names the database file, ``SPA_REDIS_URL`` the Redis server, ``SPA_ORIGINS`` the
allowed origins (the app's and the API's own, space-separated) and ``SPA_KEY_MAX_AGE`` the
keys' lifetime in seconds (short, so a tab can outlive its key within a test).
"""

import os

from tests.settings import *  # noqa: F403

# tests.settings may list authtoken already; an app listed twice is an error.
_EXTRA_APPS = ("rest_framework.authtoken", "django.contrib.staticfiles")
INSTALLED_APPS = [*INSTALLED_APPS, *(app for app in _EXTRA_APPS if app not in INSTALLED_APPS)]  # noqa: F405
# A page Django renders too (templates/page.html), for the key view's session path.
TEMPLATES = [{**TEMPLATES[0], "DIRS": [os.path.join(os.path.dirname(__file__), "templates")]}]  # noqa: F405
ROOT_URLCONF = "tests.e2e.spa.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SPA_DB", "spa.sqlite3"),
        "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [os.environ.get("SPA_REDIS_URL", "redis://127.0.0.1:6379/0")]},
    }
}
REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"]}
FLOORCHANNELS = {
    # The app's origin, and the API's own (its rendered page): once set, the whole list.
    "ALLOWED_ORIGINS": os.environ.get("SPA_ORIGINS", "http://127.0.0.1:9").split(),
    "WINDOW_KEY_MAX_AGE": int(os.environ.get("SPA_KEY_MAX_AGE", "3600")),
    "GROUP_SWEEP_INTERVAL": 0.2,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"floorchannels": {"handlers": ["stderr"], "level": "WARNING"}},
}
