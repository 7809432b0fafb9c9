"""Settings of the token clients' end-to-end project: tests.settings, plus DRF tokens and
SimpleJWT, the key view, and a single-page app's origin in ALLOWED_ORIGINS.

One daphne process with the in-memory layer; the database is a file named by ``TOKENS_DB``
(WAL, so the socket's threads read while a request writes). ``TOKENS_SPA_ORIGIN`` is the
origin the test plays the single-page app from.
"""

import os

from tests.settings import *  # noqa: F403

# INSTALLED_APPS: tests.settings lists rest_framework.authtoken already.
ROOT_URLCONF = "tests.e2e.tokens.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TOKENS_DB", "tokens.sqlite3"),
        "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
    }
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ]
}
FLOORCHANNELS = {"ALLOWED_ORIGINS": [os.environ.get("TOKENS_SPA_ORIGIN", "http://127.0.0.1:9")]}
