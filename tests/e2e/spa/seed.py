"""Create the test user (allowed to use notes) and its DRF token; print the token.

Run as ``python -m tests.e2e.spa.seed`` with the project's settings, after ``migrate``.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.spa.settings")
django.setup()

from django.contrib.auth.models import Permission, User  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

user = User.objects.create_user("alice", password="alice-pass")
user.user_permissions.add(Permission.objects.get(codename="view_note"))
print(Token.objects.create(user=user).key)
