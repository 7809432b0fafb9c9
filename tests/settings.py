"""Settings for the unit tests: the in-memory layer, a throwaway SQLite database."""

import os
import tempfile
from importlib.util import find_spec

SECRET_KEY = "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "knox",
    "guardian",
    "django_filters",
    "floorchannels",
    "tests.testapp",
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
# A file, not :memory:: SQLite's shared-cache memory databases fail with "table is locked"
# when the consumer's threads read while a REST request writes, instead of waiting.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        "OPTIONS": {"timeout": 20, "init_command": "PRAGMA synchronous=OFF; PRAGMA journal_mode=WAL;"},
        "TEST": {"NAME": os.path.join(tempfile.gettempdir(), f"floorchannels-tests-{os.getpid()}.sqlite3")},
    }
}
ASGI_APPLICATION = "tests.asgi.application"
CHANNEL_LAYERS = {
    "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10000}}
}
STATIC_URL = "/static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
FLOORCHANNELS = {"GROUP_SWEEP_INTERVAL": 0.2}

# Django's task framework (tests/test_task_queues.py): django.tasks on Django 6, the
# django-tasks backport (an app there) on Django 5.2; the database backend of django-tasks-db,
# whose worker is `manage.py db_worker`.
if find_spec("django.tasks") is None:
    INSTALLED_APPS.append("django_tasks")
INSTALLED_APPS.append("django_tasks_db")
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
