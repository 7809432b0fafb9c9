"""Django settings of the bench project: the channel layer is chosen by ``BENCH_LAYER``.

``BENCH_LAYER`` is ``memory``, ``core`` or ``pubsub`` (default); ``BENCH_REDIS_URL`` points
at Redis for the last two. Capacities are the documented ones that avoid loss on a burst:
floorchannels receives every group message of a process on its one hub channel
(``floorchannels-hub*``); raw Channels receives one message per socket channel, so every
channel needs room for the whole burst.
"""

import os

SECRET_KEY = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
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
ROOT_URLCONF = "bench.urls"
LOGGING_CONFIG = None

LAYER = os.environ.get("BENCH_LAYER", "pubsub")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# Room for the largest burst each channel receives (a burst of M messages puts M messages
# on every raw socket channel, and M per group on the floorchannels hub channel).
CAPACITY = int(os.environ.get("BENCH_CAPACITY", "100000"))


def channel_layers(layer: str, redis_url: str, capacity: int = CAPACITY) -> dict:
    if layer == "memory":
        return {
            "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": capacity}}
        }
    if layer == "core":
        return {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [redis_url],
                    "capacity": capacity,
                    "channel_capacity": {"floorchannels-hub*": capacity},
                },
            }
        }
    if layer == "pubsub":
        return {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [redis_url]},
            }
        }
    raise ValueError(f"BENCH_LAYER must be memory, core or pubsub, not {layer!r}")


CHANNEL_LAYERS = channel_layers(LAYER, REDIS_URL)


# BENCH_HISTORY=0 turns the per-group history off, to see what recovery costs;
# BENCH_GC_TUNING=0 leaves the garbage collector as Python sets it.
FLOORCHANNELS = {
    "HISTORY": os.environ.get("BENCH_HISTORY", "1") == "1",
    "GC_TUNING": os.environ.get("BENCH_GC_TUNING", "1") == "1",
}
