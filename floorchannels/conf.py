"""Every floorchannels setting, read in one place, with its default.

Projects set a single dict, ``settings.FLOORCHANNELS``; anything left out takes the default
below. Values are read on each access through :data:`fc_settings`, so
``override_settings(FLOORCHANNELS=...)`` in tests takes effect at once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Path of the websocket endpoint, as given to django.urls.path().
    "URL": "ws/floorchannels/",
    # Alias in CHANNEL_LAYERS used for groups and worker queues.
    "CHANNEL_LAYER": "default",
    # Lifetime of a window key, in seconds (1 h: see docs/security.md, Key lifetime). The
    # server sends a fresh key over the socket once REFRESH_AFTER of that lifetime has passed.
    "WINDOW_KEY_MAX_AGE": 3600,
    "WINDOW_KEY_REFRESH_AFTER": 0.75,
    # What a key from the key view (floorchannels.urls) grants: the dotted path of a
    # callable(request) -> {"topics": [...], "presence": [...]}, request.user being the
    # authenticated user (or AnonymousUser). None: no topics (WINDOW, USER, BROADCAST only).
    "KEY_TOPICS": None,
    # Origins (scheme://host[:port]) whose pages may open sockets and fetch keys from the key
    # view, for single-page apps served from another origin. None: any host in
    # ALLOWED_HOSTS, whatever the scheme and port (pages served by this project).
    "ALLOWED_ORIGINS": None,
    # Topics windows may join while open (floorchannels.joins): {pattern: permission}, where
    # a pattern is a string topic with {placeholders} ("room.{name}"; a placeholder matches
    # one or more characters other than "."), and a permission is a callable (or its dotted
    # path) called as permission(window, **captured) -> bool, sync or async. The first
    # matching pattern decides; a topic matching none cannot be joined.
    "TOPICS": {},
    # Topics one window may be in (granted by its key, joined or granted since); a join past
    # it is answered too_many_topics.
    "MAX_TOPICS": 100,
    # Seconds a new socket has to send its hello frame.
    "HELLO_TIMEOUT": 10.0,
    # Seconds between client pings, announced in the welcome frame.
    "HEARTBEAT": 25.0,
    # Seconds a browser-called handler may run before the call is answered with `timeout`.
    "CALL_TIMEOUT": 30.0,
    # Calls a single window may have running at once; further calls wait their turn.
    "MAX_CONCURRENT_CALLS": 8,
    # Prefix of the worker channels: a signal with queue="slow" is sent to the channel
    # "floorchannels.slow", served by `manage.py runworker floorchannels.slow`.
    "QUEUE_PREFIX": "floorchannels.",
    # Run queued signals inside the web process. None means "only when the channel layer
    # is the in-memory one", where no separate worker could see the queue anyway.
    "RUN_QUEUES_IN_PROCESS": None,
    # Durable queues (the Redis layers; docs/concepts.md, Queues and workers). A call a
    # worker took and did not finish within QUEUE_VISIBILITY_TIMEOUT seconds of its last
    # sign of life (the worker died) is run again by another worker; after
    # QUEUE_MAX_ATTEMPTS deliveries it goes to the queue's dead letters instead. A queue
    # holds at most QUEUE_MAX_LENGTH calls (waiting, running and delayed): past it, calls
    # are refused (PublishError; browsers get server_error). A call queued while no worker
    # of its queue was seen for QUEUE_WORKER_TIMEOUT seconds is kept, with a WARNING. On
    # SIGTERM a worker takes no new call and gives the running one QUEUE_SHUTDOWN_GRACE
    # seconds before handing it back to the other workers.
    "QUEUE_VISIBILITY_TIMEOUT": 30.0,
    "QUEUE_MAX_ATTEMPTS": 5,
    "QUEUE_MAX_LENGTH": 100_000,
    "QUEUE_WORKER_TIMEOUT": 60.0,
    "QUEUE_SHUTDOWN_GRACE": 10.0,
    # Queues whose calls Django's task framework runs (django.tasks; the django-tasks
    # package on Django 5.2) instead of the queue workers above: {queue: route}, where a
    # route is a TASKS backend alias ("default") or {"backend": alias, "queue_name": name,
    # "priority": n} (all optional). The queue "*" routes every queue not named. Such a
    # call is a task of floorchannels.signal_tasks.run_signal, run by the backend's worker.
    "TASK_QUEUES": {},
    # Seconds between sweeps that forget groups no local socket uses any more.
    "GROUP_SWEEP_INTERVAL": 30.0,
    # Seconds between re-adding this process's group memberships, which keeps them alive
    # past the layer's group_expiry (channels-redis: 1 day).
    "GROUP_REFRESH_INTERVAL": 3600.0,
    # Window and user groups (one per tab, one per user) travel on this many shared layer
    # groups instead of one layer group each, so a connecting tab rarely costs a Redis
    # SUBSCRIBE and a process holds a bounded number of memberships. A process then also
    # receives (and drops) the window/user messages of other processes' windows in the
    # shards it is in. 0: one layer group per window and per user. Must be the same in
    # every process that publishes or serves sockets.
    "PRIVATE_GROUP_SHARDS": 256,
    # At the first connection, tune the garbage collector for a server holding many
    # sockets: gc.freeze() the start-up objects and raise the generation-0 threshold from
    # Python's default 700 to 10,000 (left alone if the project set its own). Full
    # collections, which stop the event loop for ~100 ms with 1,000 sockets, become rare
    # (docs/benchmarks.md, Latency). False leaves the collector as it is.
    "GC_TUNING": True,
    # Bytes of frames a window may have waiting to be written (the server's own buffer
    # past its transport's); a window that does not read and passes it is closed with 4507
    # (slow client), then reconnects and resumes from history. Nothing else waits for it.
    "MAX_BUFFERED_BYTES": 1024 * 1024,
    # Largest client frame, in characters; a larger one closes the socket with 4413.
    "MAX_FRAME_SIZE": 64 * 1024,
    # Largest signal frame call()/acall() publish, in UTF-8 bytes as written to a socket
    # (position fields included); a larger one raises UnsendableSignal at publish time.
    # daphne refuses to send a websocket message over 1 MiB (its
    # --websocket_max_message_size, 1,048,576 by default): stay below what your server sends.
    "MAX_MESSAGE_SIZE": 1_000_000,
    # Frames per second a window may send (token bucket: RATE_LIMIT per second, bursts of
    # RATE_LIMIT_BURST). Frames over it are answered `rate_limited`; after
    # RATE_LIMIT_CLOSE_AFTER of those in a row the socket is closed with 4429.
    "RATE_LIMIT": 20.0,
    "RATE_LIMIT_BURST": 40,
    "RATE_LIMIT_CLOSE_AFTER": 50,
    # On SIGTERM, close open sockets with 4503 (going away) and wait SHUTDOWN_GRACE seconds before the
    # server's own handler stops it.
    "GRACEFUL_SHUTDOWN": True,
    "SHUTDOWN_GRACE": 0.5,
    # Live resource subscriptions one window may hold.
    "MAX_SUBSCRIPTIONS": 100,
    # How many visible pks a list subscription records at subscribe time (so deletions go
    # only to windows that saw the object). Past this, deletions reach the whole partition.
    "MAX_TRACKED_PKS": 10000,
    # Resource events waiting, per process, for their per-user visibility checks. Past it,
    # an event is dropped and the windows subscribed to its resource get `resync
    # overloaded` (WARNING, metric resource_events_dropped).
    "RESOURCE_QUEUE_SIZE": 10000,
    # Per-group history for replay after reconnects: HISTORY_SIZE messages per group, none
    # older than HISTORY_TTL seconds. Stored in Redis with the Redis layers (the layer's
    # first host, or HISTORY_REDIS_URL), in memory with the in-memory layer.
    "HISTORY": True,
    "HISTORY_SIZE": 1000,
    "HISTORY_TTL": 600,
    "HISTORY_REDIS_URL": None,
    # Bounds of the in-memory history (the in-memory layer's): counters of at most this
    # many groups, and frames of at most this many characters across all groups. Past
    # either, the least recently used group is dropped (WARNING, metric history_evicted);
    # windows that resume there get `resync history`. Groups idle past HISTORY_TTL lose
    # their entries anyway.
    "HISTORY_MAX_GROUPS": 100_000,
    "HISTORY_MAX_BYTES": 64 * 1024 * 1024,
    # Seconds between renewals of this process's presence entries; an entry not renewed
    # for two intervals (a crashed process) expires and is announced as left.
    "PRESENCE_HEARTBEAT": 10.0,
    # Joins and leaves within this many seconds go out as one diff per topic and process.
    "PRESENCE_DIFF_DELAY": 0.1,
    # Redis connections floorchannels' own clients (history, presence) may hold per event
    # loop and Redis URL. A command finding them all busy waits up to REDIS_POOL_TIMEOUT
    # seconds for one, then fails like any Redis error (counted: redis_pool_timeouts).
    # The channel layer's own connections are not counted here (docs/operations.md).
    "REDIS_MAX_CONNECTIONS": 16,
    "REDIS_POOL_TIMEOUT": 10.0,
    # Threads that run synchronous signal handlers called from browsers, apart from the
    # threads the rest of the server needs (e.g. checking the user of a connecting window):
    # handlers that hang can fill these, never those. When all are busy, further calls
    # wait (and time out after CALL_TIMEOUT), with a WARNING and sync_handlers_saturated.
    "SYNC_HANDLER_THREADS": 16,
    # Modules named so in every installed app are imported at start-up.
    "AUTODISCOVER": "signals",
}


def _types_of(default: Any) -> tuple[type, ...]:
    """What a setting may hold, from its default: a float setting takes an int too."""
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (int, float)
    return (type(default),)


#: The types each setting accepts (the system check floorchannels.E008 compares them).
#: An int setting is a count and takes only ints; True/False are never numbers here.
TYPES: dict[str, tuple[type, ...]] = {name: _types_of(value) for name, value in DEFAULTS.items()} | {
    # Seconds, whole or not.
    "WINDOW_KEY_MAX_AGE": (int, float),
    "HISTORY_TTL": (int, float),
    # None: decided by the layer.
    "RUN_QUEUES_IN_PROCESS": (bool, type(None)),
    "HISTORY_REDIS_URL": (str, type(None)),
    "KEY_TOPICS": (str, type(None)),
    "ALLOWED_ORIGINS": (list, tuple, type(None)),
    # None or False: no autodiscovery.
    "AUTODISCOVER": (str, bool, type(None)),
}


class Settings:
    """Attribute access to ``settings.FLOORCHANNELS`` merged over :data:`DEFAULTS`.

    A value is remembered once read (the connect path reads a dozen), and forgotten when
    Django says ``FLOORCHANNELS`` changed (``override_settings``, pytest-django's
    ``settings``): see :meth:`forget`, connected in ``FloorchannelsConfig.ready``.
    """

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown floorchannels setting {name!r}")
        user = getattr(settings, "FLOORCHANNELS", None)
        if not isinstance(user, dict):
            user = {}  # not a dict: the system check floorchannels.E009 says so
        value = self.__dict__[name] = user.get(name, DEFAULTS[name])
        return value

    def forget(self, setting: str | None = None, **kwargs: Any) -> None:
        """Drop the remembered values (a ``setting_changed`` receiver)."""
        if setting in (None, "FLOORCHANNELS"):
            self.__dict__.clear()


fc_settings = Settings()
