"""Publishes COUNT numbered BROADCAST signals at INTERVAL seconds; prints what succeeded.

Run as a separate process (the sample project's settings, REDIS_URL in the environment),
like a web or worker process publishing while Redis fails.
"""

import json
import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sampleproject.settings")
django.setup()

from floorchannels import BROADCAST, PublishError, call  # noqa: E402

count, interval = int(sys.argv[1]), float(sys.argv[2])
sent, failed, errors = [], [], set()
for i in range(count):
    started = time.monotonic()
    try:
        call("load.tick", BROADCAST, kwargs={"i": i})
        sent.append([i, time.time()])
    except PublishError as exc:
        failed.append(i)
        errors.add(type(exc.__cause__).__name__)
    time.sleep(max(0.0, interval - (time.monotonic() - started)))
print(json.dumps({"sent": sent, "failed": failed, "errors": sorted(errors)}))
