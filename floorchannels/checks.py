"""System checks: the mistakes that otherwise fail silently at run time.

Every id, and what to do about it:

- ``E001`` CHANNEL_LAYERS has no layer for ``FLOORCHANNELS["CHANNEL_LAYER"]``.
- ``E002`` the layer cannot be loaded (the message says why).
- ``E003`` the layer has no groups.
- ``E004`` ASGI_APPLICATION is not set; ``E005`` it cannot be imported.
- ``E006`` the layer's package is not installed (channels-redis: the ``redis`` extra).
- ``E007`` ``HISTORY_REDIS_URL`` is set but redis-py is not installed (the ``redis`` extra).
- ``E008`` a known ``FLOORCHANNELS`` key holds a value of the wrong type;
  ``E009`` ``FLOORCHANNELS`` is not a dict.
- ``E010`` an ``ALLOWED_ORIGINS`` entry is not an origin (``scheme://host[:port]``).
- ``E011`` ``KEY_TOPICS`` cannot be imported, or is not callable.
- ``E012`` a ``TOPICS`` pattern is misdeclared.
- ``E013`` a ``TASK_QUEUES`` route cannot work: no task framework installed, a key that is
  not a queue name, or a route its task backend refuses (unknown alias, a queue name or a
  priority the backend does not take).
- ``W001`` ASGI_APPLICATION does not route to floorchannels' consumer at all.
- ``W002`` signals use queues but ``channels`` (which provides ``runworker``) is not installed.
- ``W003`` the layer's capacity drops bursts.
- ``W004`` an unknown key in ``FLOORCHANNELS`` (with the nearest known key, if any).
- ``W005`` ``manage.py runserver`` is Django's (HTTP only), not daphne's: the socket is a 404.
- ``W006`` ASGI_APPLICATION has no ``"websocket"`` protocol.
- ``W007`` ASGI_APPLICATION routes the consumer, but not at the path browsers connect to
  (``FLOORCHANNELS["URL"]``).
- ``W008`` a queue of registered signals has had no worker for ``QUEUE_WORKER_TIMEOUT``
  seconds (Redis layers): its calls wait in Redis. ``W009`` Redis could not be asked.
- ``W010`` with the in-memory layer, a ``TASK_QUEUES`` route to a backend whose workers are
  other processes: what its handlers send reaches no window.

The routing checks (W001, W006, W007) are warnings, not errors: ASGI_APPLICATION is what
``runserver`` and ``runworker`` serve, while a production server may be given another
application on its command line.
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .conf import DEFAULTS, TYPES, fc_settings

#: Packages a channel layer may need that floorchannels' ``redis`` extra installs.
_REDIS_PACKAGES = {"channels_redis", "redis"}
_REDIS_EXTRA = 'pip install "floorchannels[redis]"'


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Unknown keys (a typo keeps the default, silently) and values of the wrong type."""
    user = getattr(settings, "FLOORCHANNELS", None)
    if user is None:
        return []
    if not isinstance(user, dict):
        return [
            Error(
                f"FLOORCHANNELS must be a dict, not {type(user).__name__}.",
                hint='For example FLOORCHANNELS = {"URL": "ws/floorchannels/"}.',
                id="floorchannels.E009",
            )
        ]
    problems: list[Any] = []
    for name, value in user.items():
        if name not in DEFAULTS:
            close = difflib.get_close_matches(str(name), DEFAULTS, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else "See docs/settings.md for the settings."
            problems.append(
                Warning(
                    f"FLOORCHANNELS has an unknown key {name!r}; floorchannels ignores it.",
                    hint=hint,
                    id="floorchannels.W004",
                )
            )
            continue
        allowed = TYPES[name]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            expected = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
            problems.append(
                Error(
                    f"FLOORCHANNELS[{name!r}] is {value!r} ({type(value).__name__}); it must be {expected}.",
                    hint=f"The default is {DEFAULTS[name]!r}.",
                    id="floorchannels.E008",
                )
            )
    return problems


@register()
def check_key_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """ALLOWED_ORIGINS entries that could never match a browser's Origin (a path, a typo in
    the scheme) and a KEY_TOPICS hook that the key view could not call."""
    from .origins import parse_origin

    problems: list[Any] = []
    origins = fc_settings.ALLOWED_ORIGINS
    if isinstance(origins, list | tuple):
        for entry in origins:
            if not isinstance(entry, str) or parse_origin(entry) is None:
                problems.append(
                    Error(
                        f"FLOORCHANNELS['ALLOWED_ORIGINS'] has {entry!r}, which is not an origin.",
                        hint='An origin is scheme://host[:port], http or https, with no path: "https://app.example.com".',
                        id="floorchannels.E010",
                    )
                )
    path = fc_settings.KEY_TOPICS
    if isinstance(path, str) and path:
        try:
            hook = import_string(path)
        except Exception as exc:
            problems.append(
                Error(
                    f"FLOORCHANNELS['KEY_TOPICS'] {path!r} cannot be imported: {exc}", id="floorchannels.E011"
                )
            )
        else:
            if not callable(hook):
                problems.append(
                    Error(
                        f"FLOORCHANNELS['KEY_TOPICS'] {path!r} is not callable.",
                        hint='It names a function(request) -> {"topics": [...], "presence": [...]}.',
                        id="floorchannels.E011",
                    )
                )
    return problems


@register()
def check_topic_patterns(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """A misdeclared TOPICS pattern would otherwise show only at the first join, as a
    logged server_error."""
    from .joins import topic_patterns

    try:
        topic_patterns()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint='FLOORCHANNELS["TOPICS"] maps patterns ("room.{name}") to permission callables or their dotted paths.',
                id="floorchannels.E012",
            )
        ]
    return []


@register()
def check_task_queues(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """A TASK_QUEUES route that would otherwise fail each call routed to it, at run time."""
    from .task_queues import check_routes, unreachable_routes

    problems = [
        Error(
            f"FLOORCHANNELS['TASK_QUEUES']: {problem}.",
            hint='Route a queue to a TASKS backend alias: {"reports": "default"}, or '
            '{"reports": {"backend": "default", "queue_name": "default", "priority": 0}}; see docs/settings.md.',
            id="floorchannels.E013",
        )
        for problem in check_routes()
    ]
    if problems:
        return problems
    return [
        Warning(
            f"FLOORCHANNELS['TASK_QUEUES'] routes queue {queue!r} to task backend {alias!r}, whose "
            "workers run in other processes, but the channel layer is the in-memory one: what its "
            "handlers send reaches no window.",
            hint="Use a Redis channel layer shared by the web processes and the task workers "
            "(docs/deployment.md), or the immediate backend while developing.",
            id="floorchannels.W010",
        )
        for queue, alias in unreachable_routes()
    ]


@register()
def check_channel_layer(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    alias = fc_settings.CHANNEL_LAYER
    layers = getattr(settings, "CHANNEL_LAYERS", {}) or {}
    if alias not in layers:
        return [
            Error(
                f"CHANNEL_LAYERS has no {alias!r} layer.",
                hint="Add one: channels.layers.InMemoryChannelLayer for one process, "
                "channels_redis.pubsub.RedisPubSubChannelLayer for several.",
                id="floorchannels.E001",
            )
        ]
    path = layers[alias].get("BACKEND", "")
    try:
        backend = import_string(path)
        # An instance, not the class: the Redis pub/sub layer provides its methods per loop.
        layer = get_channel_layer(alias)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] in _REDIS_PACKAGES:
            return [
                Error(
                    f"The {alias!r} channel layer ({path}) needs the {exc.name} package, which is not installed.",
                    hint=_REDIS_EXTRA,
                    id="floorchannels.E006",
                )
            ]
        return [Error(f"The {alias!r} channel layer cannot be loaded: {exc}", id="floorchannels.E002")]
    except Exception as exc:  # an answer, not a crash of `manage.py check`
        return [Error(f"The {alias!r} channel layer cannot be loaded: {exc}", id="floorchannels.E002")]
    if not all(hasattr(layer, name) for name in ("group_add", "group_discard", "group_send")):
        return [
            Error(
                f"The {alias!r} channel layer ({backend.__name__}) does not support groups.",
                hint="floorchannels delivers through groups; use a layer with the groups extension.",
                id="floorchannels.E003",
            )
        ]
    return []


@register()
def check_history_redis(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """HISTORY_REDIS_URL with the in-memory layer needs redis-py, which the layer does not."""
    if fc_settings.HISTORY and fc_settings.HISTORY_REDIS_URL and importlib.util.find_spec("redis") is None:
        return [
            Error(
                "FLOORCHANNELS['HISTORY_REDIS_URL'] is set, but the redis package is not installed.",
                hint=_REDIS_EXTRA,
                id="floorchannels.E007",
            )
        ]
    return []


# Routing ----------------------------------------------------------------------------------

#: What a websocket connection to a path meets: floorchannels' consumer, another
#: application, no route at all, or an application the check cannot see into.
CONSUMER, OTHER, NO_ROUTE, UNKNOWN = "consumer", "other", "no route", "unknown"


def _contains_consumer(app: Any, seen: set[int]) -> bool:
    """Walk routers and middleware looking for the floorchannels consumer."""
    from .consumers import SignalConsumer

    if app is None or id(app) in seen:
        return False
    seen.add(id(app))
    consumer = getattr(app, "consumer_class", None)
    if isinstance(consumer, type) and issubclass(consumer, SignalConsumer):
        return True
    children: list[Any] = []
    mapping = getattr(app, "application_mapping", None)
    if isinstance(mapping, dict):
        children.extend(mapping.values())
    for route in getattr(app, "routes", None) or []:
        children.append(getattr(route, "callback", None))
        children.extend(getattr(route, "url_patterns", None) or [])
    children.append(getattr(app, "inner", None))
    children.append(getattr(app, "application", None))
    return any(_contains_consumer(child, seen) for child in children)


def _route(app: Any, path: str, depth: int = 0) -> str:
    """Where a websocket connection to ``path`` ends up in ``app``, resolved the way
    Channels' ``URLRouter`` resolves it (leading slash dropped, first matching route, a
    nested router that finds nothing passes on to the next route)."""
    from channels.routing import URLRouter

    from .consumers import SignalConsumer

    if app is None or depth > 50:
        return UNKNOWN
    consumer = getattr(app, "consumer_class", None)
    if isinstance(consumer, type):
        return CONSUMER if issubclass(consumer, SignalConsumer) else OTHER
    if isinstance(app, URLRouter):
        remaining = path.lstrip("/")
        for route in app.routes:
            match = route.pattern.match(remaining)
            if match:
                outcome = _route(route.callback, match[0], depth + 1)
                if outcome != NO_ROUTE:
                    return outcome
        return NO_ROUTE
    # Middleware (Channels' BaseMiddleware and its stacks: .inner; OriginValidator: .application).
    for attribute in ("inner", "application"):
        inner = getattr(app, attribute, None)
        if inner is not None and inner is not app:
            return _route(inner, path, depth + 1)
    return UNKNOWN


def _websocket_app(application: Any) -> tuple[bool, Any]:
    """(whether ``application`` can take websockets, the app that does)."""
    from channels.routing import ProtocolTypeRouter
    from django.core.handlers.asgi import ASGIHandler

    if isinstance(application, ProtocolTypeRouter):
        websocket = application.application_mapping.get("websocket")
        return websocket is not None, websocket
    if isinstance(application, ASGIHandler):
        # ASGIStaticFilesHandler passes every other request to the application it wraps;
        # get_asgi_application() itself takes HTTP only.
        inner = getattr(application, "application", None)
        if inner is not None and inner is not application:
            return _websocket_app(inner)
        return False, None
    return True, application


@register()
def check_routing(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return [
            Error(
                "ASGI_APPLICATION is not set, so floorchannels' websocket route cannot be served.",
                hint="Point it at your asgi.py application, which includes floorchannels.routing.websocket_urlpatterns.",
                id="floorchannels.E004",
            )
        ]
    try:
        application = import_string(path)
    except Exception as exc:
        return [Error(f"ASGI_APPLICATION {path!r} cannot be imported: {exc}", id="floorchannels.E005")]
    takes_websockets, websocket = _websocket_app(application)
    if not takes_websockets:
        return [
            Warning(
                f"{path} has no 'websocket' protocol: servers answer floorchannels' socket with 404 or 403.",
                hint='Make it a channels.routing.ProtocolTypeRouter with "websocket": '
                "URLRouter(floorchannels.routing.websocket_urlpatterns).",
                id="floorchannels.W006",
            )
        ]
    url = "/" + str(fc_settings.URL).lstrip("/")
    outcome = _route(websocket, url)
    if outcome == CONSUMER:
        return []
    contains = _contains_consumer(application, set())
    if not contains:
        return [
            Warning(
                f"{path} does not route to floorchannels' websocket consumer.",
                hint="Add floorchannels.routing.websocket_urlpatterns to the 'websocket' URLRouter.",
                id="floorchannels.W001",
            )
        ]
    if outcome == UNKNOWN:
        return []  # an application the check cannot see into: trust it
    return [
        Warning(
            f"Browsers connect to {url} (FLOORCHANNELS['URL']), but {path} routes that path "
            + ("to another application" if outcome == OTHER else "nowhere")
            + ", so their sockets are refused. floorchannels' consumer is routed at another path.",
            hint="Include floorchannels.routing.websocket_urlpatterns in the outermost 'websocket' "
            "URLRouter, not under a prefix, or set FLOORCHANNELS['URL'] to the full path of the route.",
            id="floorchannels.W007",
        )
    ]


# runserver --------------------------------------------------------------------------------


def running_command() -> str | None:
    """The management command this process runs (``manage.py <command>``), or None.

    Django's checks are not told which command runs them; ``manage.py``, ``django-admin``
    and ``python -m django`` all take it from ``sys.argv[1]``, as here (the autoreloader's
    child process is started with the same arguments).
    """
    return sys.argv[1] if len(sys.argv) > 1 else None


@register()
def check_runserver(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Under Django's own runserver (WSGI, HTTP only) the websocket is a 404 and the page's
    client stays "connecting": only daphne's runserver serves ASGI_APPLICATION.

    ``runserver`` is the command of the first app in INSTALLED_APPS that has one, so
    daphne must come before django.contrib.staticfiles (whose runserver serves static files
    over WSGI). Only when the running command is ``runserver``: a project served by uvicorn
    or daphne in production needs neither.
    """
    if running_command() != "runserver":
        return []
    from django.core.management import get_commands

    provider = get_commands().get("runserver")
    if provider == "daphne":
        return []
    url = "/" + str(fc_settings.URL).lstrip("/")
    server = "Django's own runserver" if provider == "django.core" else f"the runserver of {provider}"
    if importlib.util.find_spec("daphne") is None:
        hint = (
            'Install daphne (pip install "floorchannels[daphne]") and put "daphne" first in INSTALLED_APPS.'
        )
    elif provider == "django.contrib.staticfiles":
        hint = 'Move "daphne" before "django.contrib.staticfiles" in INSTALLED_APPS (first is simplest).'
    else:
        hint = 'Add "daphne" to INSTALLED_APPS, first.'
    return [
        Warning(
            f"`manage.py runserver` is {server}, which serves HTTP only: floorchannels' "
            f"websocket ({url}) answers 404 and pages stay connecting.",
            hint=hint + " Or serve ASGI_APPLICATION with an ASGI server (daphne, uvicorn).",
            id="floorchannels.W005",
        )
    ]


@register()
def check_worker_command(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    from django.apps import apps

    from .registry import registry

    queues = registry.queues()
    if queues and not apps.is_installed("channels"):
        return [
            Warning(
                f"Signals use queues ({', '.join(sorted(queues))}) but 'channels' is not in INSTALLED_APPS, "
                "so `manage.py runworker` is not available to serve them.",
                hint="Add 'channels' to INSTALLED_APPS.",
                id="floorchannels.W002",
            )
        ]
    return []


@register()
def check_capacity(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Channels' default capacity (100) silently drops bursts on the hub's channel."""
    alias = fc_settings.CHANNEL_LAYER
    config = (getattr(settings, "CHANNEL_LAYERS", {}) or {}).get(alias) or {}
    backend = config.get("BACKEND", "")
    if "pubsub" in backend.lower():
        return []  # no capacity limit
    options = config.get("CONFIG") or {}
    capacity = options.get("capacity", 100)
    hub_capacity = max(
        [
            capacity,
            *(c for p, c in (options.get("channel_capacity") or {}).items() if "floorchannels-hub" in p),
        ]
    )
    if hub_capacity < 1000:
        return [
            Warning(
                f"The {alias!r} channel layer holds at most {hub_capacity} messages per channel: a burst "
                "larger than that to one process is dropped.",
                hint='Raise "capacity" (or "channel_capacity": {"floorchannels-hub*": 100000}); see docs/deployment.md.',
                id="floorchannels.W003",
            )
        ]
    return []


@register()
def check_queue_workers(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Durable queues no worker serves: calls wait in Redis, and a browser is told ``queued``.

    Asks Redis (one second at most) which queues had a worker within
    ``QUEUE_WORKER_TIMEOUT``. Not in ``runworker`` itself, which is about to serve them.
    """
    from .queues import durable, in_process, redis_url, stream_key
    from .registry import registry
    from .task_queues import routes

    # Queues routed to a task backend have that backend's workers, not ours.
    table = routes()
    queues = sorted(queue for queue in registry.queues() if queue not in table and "*" not in table)
    if not queues or running_command() == "runworker" or not durable() or in_process():
        return []  # (in process: the web processes are the workers, once they serve)
    try:
        import redis
    except ImportError:
        return []  # E006 says so
    timeout = float(fc_settings.QUEUE_WORKER_TIMEOUT)
    try:
        with redis.Redis.from_url(str(redis_url()), socket_timeout=1, socket_connect_timeout=1) as client:
            now = client.time()[0]
            idle = {
                queue: client.xlen(stream_key(queue)) + client.zcard(f"{stream_key(queue)}:delayed")
                for queue in queues
                if not client.zcount(f"{stream_key(queue)}:workers", now - timeout, "+inf")
            }
    except redis.RedisError as exc:
        return [
            Warning(
                f"Could not ask Redis whether the queues ({', '.join(queues)}) have workers: {exc}",
                id="floorchannels.W009",
            )
        ]
    return [
        Warning(
            f"No worker has served queue {queue!r} for {timeout:g} s (QUEUE_WORKER_TIMEOUT); "
            f"{count} call(s) wait in Redis for one.",
            hint=f"Start one: python manage.py runworker {fc_settings.QUEUE_PREFIX}{queue}",
            id="floorchannels.W008",
        )
        for queue, count in idle.items()
    ]
