"""Push ``spa.pushed`` with ``n`` = each number given to a user's windows, from a process of
its own (as a web or worker process would), through Redis: the pushes reach the history
whether or not daphne is running.

    python -m tests.e2e.spa.publish alice 1 2 3
"""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.spa.settings")
django.setup()

from django.contrib.auth.models import User  # noqa: E402

from floorchannels import USER, call  # noqa: E402

user = User.objects.get(username=sys.argv[1])
for n in sys.argv[2:]:
    call("spa.pushed", USER(user), kwargs={"n": int(n)})
print("published", *sys.argv[2:])
