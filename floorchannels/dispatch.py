"""``call()`` and ``acall()``: send a signal to the server, to windows, users, everyone or topics.

Browser targets become one ``group_send`` per group, each carrying the same message id and
the frame already encoded, so a process serialises a message once per publish and a window
reached through several groups still runs it once (see :mod:`floorchannels.hub`).
SERVER targets run the Python handlers: inline, or on a worker when the handler has a queue.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

from channels.exceptions import ChannelFull

from . import messages, metrics, protocol, queues, task_queues
from .conf import fc_settings
from .history import alias, get_history, with_position
from .layers import channel_layer, group_send
from .registry import Handler, registry
from .syncloop import run_sync
from .targets import SERVER, groups_for
from .topics import _PREFIX_USER, _PREFIX_WINDOW, BROADCAST_GROUP, user_group, window_group
from .windows import WindowInfo


def queue_channel(queue: str) -> str:
    """The worker channel of a queue: ``runworker`` takes this name."""
    return f"{fc_settings.QUEUE_PREFIX}{queue}"


def _timestamp(value: dt.datetime | float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("eta and expires datetimes must be timezone-aware.")
        return value.timestamp()
    return float(value)


def _schedule(countdown: float | None, eta: Any, expires: Any) -> tuple[float | None, float | None]:
    """Turn countdown/eta/expires into absolute Unix times (eta, expires)."""
    if countdown is not None and eta is not None:
        raise ValueError("Give countdown or eta, not both.")
    when = time.time() + countdown if countdown is not None else _timestamp(eta)
    if isinstance(expires, int | float) and not isinstance(expires, bool):
        expires_at = (when or time.time()) + expires
    else:
        expires_at = _timestamp(expires)
    return when, expires_at


class UnsendableSignal(ValueError):
    """A signal no browser could receive: its kwargs are not strict JSON (NaN, Infinity, an
    object JSON cannot hold), or its frame is over ``MAX_MESSAGE_SIZE``.

    Raised by call()/acall() before any handler runs or anything is sent: a server would
    otherwise write a frame the browser drops (not JSON) or refuse to write it (daphne
    sends no websocket message over 1 MiB), and the loss would go unnoticed.
    """


#: Most characters the history's position fields add to a frame: ``g`` (12), ``seq`` (a
#: counter and "-0") and ``e`` (an epoch; the consumer reads at most 64 characters of it);
#: then ``o`` and, per other group, ``"<alias>":"<counter>-0",``.
_POSITION_FIELDS = len(',"g":"","seq":"-0","e":""') + 12 + 20 + 64 + len(',"o":{}')
_OTHER_POSITION = 12 + 20 + len('"":"-0",')


def _encode_signal(
    name: str, message_id: str, kwargs: dict[str, Any], *, to_browsers: bool, positions: int
) -> str:
    """The signal frame, checked against what the wire carries (see :class:`UnsendableSignal`)."""
    try:
        frame = protocol.encode({"type": "signal", "signal": name, "kwargs": kwargs, "id": message_id})
    except (TypeError, ValueError) as exc:
        raise UnsendableSignal(
            f"Signal {name!r} cannot be sent: its kwargs are not strict JSON ({exc}). NaN, "
            "infinite floats and objects JSON cannot hold never reach a browser."
        ) from exc
    if not to_browsers:
        return frame
    limit = fc_settings.MAX_MESSAGE_SIZE
    size = len(frame) if frame.isascii() else len(frame.encode())
    if positions:
        size += _POSITION_FIELDS + (positions - 1) * _OTHER_POSITION
    if size > limit:
        raise UnsendableSignal(
            f"Signal {name!r} cannot be sent: its frame is {size:,} bytes, over MAX_MESSAGE_SIZE "
            f"({limit:,}). Send an id and let the page fetch the data."
        )
    return frame


def _as_list(to: Any) -> list[Any]:
    # A tuple is one topic, ("room", 7); several targets are given as a list.
    if isinstance(to, list | set | frozenset):
        return list(to)
    return [to]


class Publication:
    """One call(), resolved: the handlers to run here, the messages to send."""

    def __init__(
        self,
        name: str,
        to: Any,
        window: WindowInfo | None,
        kwargs: dict[str, Any] | None,
        countdown: float | None,
        eta: Any,
        expires: Any,
    ) -> None:
        targets = _as_list(to)
        self.name = name
        self.id = uuid.uuid4().hex
        self.window = window or WindowInfo()
        self.kwargs = dict(kwargs or {})
        self.eta, self.expires = _schedule(countdown, eta, expires)
        self.inline: list[Handler] = []
        self.queued: list[Handler] = []
        if SERVER in targets:
            handlers = registry.get(name)
            if not handlers:
                raise LookupError(f"No Python handler is registered for signal {name!r}.")
            for handler in handlers:
                handler.arguments.validate(self.kwargs)
                (self.queued if handler.queue else self.inline).append(handler)
            if self.inline and self.eta is not None:
                raise ValueError(
                    f"Signal {name!r} has handlers without a queue: they run at once, in the "
                    "caller, so countdown/eta need queue=... on the handler."
                )
        self.groups = groups_for(targets, window)
        #: The encoded frame, checked before anything runs. Queued signals cross the
        #: channel layer as JSON too, so their kwargs must be strict JSON (any size).
        self.frame = ""
        if self.groups or self.queued:
            self.frame = _encode_signal(
                name,
                self.id,
                self.kwargs,
                to_browsers=bool(self.groups),
                positions=len(self.groups) if self.eta is None and get_history() is not None else 0,
            )

    def group_message(self) -> dict[str, Any]:
        return messages.DELIVER.build(
            id=self.id, frame=self.frame, multi=len(self.groups) > 1, eta=self.eta, expires=self.expires
        )

    async def send(self) -> None:
        """Everything that crosses the channel layer: worker queues, then groups."""
        for queue in dict.fromkeys(handler.queue for handler in self.queued):
            await enqueue(queue, self.name, self.window, self.kwargs, self.id, self.eta, self.expires)
        if not self.groups:
            return
        layer = channel_layer()
        message = self.group_message()
        groups = _send_order(self.groups)
        # Delayed messages stay out of the history: a replay must not deliver them early.
        history = get_history() if self.eta is None else None
        positions: dict[str, tuple[str, int]] = {}
        if history is not None:
            for group in groups:
                positions[group] = await history.append(group, self.id, self.frame)
        # The window's own copy may name its user's group: no one else receives it.
        own = window_group(self.window.window_id) if self.window.window_id else None
        own_user = {user_group(self.window.user_pk)} if self.window.user_pk is not None else set()
        for index, group in enumerate(groups):
            frame = self.frame
            if group in positions:
                epoch, seq = positions[group]
                shown = own_user if group == own else set()
                later = _later(groups[index + 1 :], positions, shown)
                frame = with_position(frame, alias(group), seq, epoch, later)
            await group_send(layer, group, dict(message, group=group, frame=frame))


def _private(group: str) -> bool:
    return group.startswith((_PREFIX_WINDOW, _PREFIX_USER))


def _send_order(groups: list[str]) -> list[str]:
    """Window and user groups first, then topics, BROADCAST last.

    A window in several of a message's groups gets it once, through the first copy to
    reach its process (see the hub), and so never sees the message's place in its other
    groups. Each copy therefore lists the message's place in the groups sent after it
    (``o``, see :func:`_later`), so the client's gap detection does not mistake those for
    lost messages. Sent in this order, the copy a window gets first, from the earliest
    of its groups, lists all its other ones.
    """
    return sorted(
        groups,
        key=lambda g: (
            0 if g.startswith(_PREFIX_WINDOW) else 1 if _private(g) else 3 if g == BROADCAST_GROUP else 2
        ),
    )


def _later(groups: list[str], positions: dict[str, tuple[str, int]], shown: set[str]) -> dict[str, int]:
    """The positions a copy lists: of the groups sent after it, but of a window's or a
    user's group only when ``shown`` (a copy can reach windows of other users, who must not
    learn how many messages someone else's groups had). A window that is not told of its
    place in one of its groups resumes after ``gapTimeout`` to fill the gap it sees."""
    return {alias(g): positions[g][1] for g in groups if g in positions and (g in shown or not _private(g))}


async def enqueue(
    queue: str,
    name: str,
    window: WindowInfo,
    kwargs: dict[str, Any],
    message_id: str,
    eta: float | None = None,
    expires: float | None = None,
) -> None:
    """Hand signal ``name`` to the workers of ``queue``, acting for ``window``.

    A queue that ``TASK_QUEUES`` routes to a task backend becomes a task there
    (:mod:`floorchannels.task_queues`), returning once the backend has it. Otherwise, on
    the Redis layers the call is kept in Redis (:mod:`floorchannels.queues`) and this
    returns once it is: a browser is told ``queued: true`` only then. Anything that stops
    it from being kept raises :class:`PublishError` and nothing was queued. With the
    in-memory layer it goes to the queue's channel, served by the web process itself.
    """
    # A JSON round trip leaves only types every channel layer and task backend can carry.
    kwargs = json.loads(protocol.encode(kwargs))
    try:
        route = task_queues.route_for(queue)
        if route is not None:
            await task_queues.enqueue_task(route, queue, name, window, kwargs, message_id, eta, expires)
            return
    except Exception as exc:
        metrics.increment("publish_errors")
        raise PublishError(f"Could not queue signal {name!r} on {queue!r} as a task: {exc}") from exc
    message = messages.RUN.build(
        id=message_id,
        queue=queue,
        signal=name,
        kwargs=kwargs,
        window=window.to_message(),
        eta=eta,
        expires=expires,
    )
    if queues.durable():
        try:
            await queues.push(queue, message)
        except queues.QueueFull as exc:
            raise PublishError(str(exc)) from None
        except Exception as exc:
            metrics.increment("publish_errors")
            raise PublishError(f"Could not queue signal {name!r} on {queue!r}: {exc}") from exc
        return
    try:
        await channel_layer().send(queue_channel(queue), message)
    except ChannelFull:
        metrics.increment("dropped")
        raise PublishError(f"Queue {queue!r} is full: is its worker running?") from None


class PublishError(Exception):
    """The signal could not be handed to the channel layer (e.g. Redis is unreachable).

    Nothing is retried: the caller decides whether to retry, queue or give up. Inline
    SERVER handlers had already run when this is raised.
    """


async def _send(publication: Publication) -> None:
    try:
        await publication.send()
    except PublishError:
        raise
    except Exception as exc:
        metrics.increment("publish_errors")
        raise PublishError(f"Could not publish signal {publication.name!r}: {exc}") from exc


async def acall(
    name: str,
    to: Any,
    *,
    window: WindowInfo | None = None,
    kwargs: dict[str, Any] | None = None,
    countdown: float | None = None,
    eta: dt.datetime | float | None = None,
    expires: dt.datetime | float | None = None,
) -> str:
    """Send signal ``name`` to ``to`` from async code; return the message id.

    ``to`` is one target or a list of them (a tuple is a single composite topic): ``SERVER``, ``WINDOW`` and ``USER`` (the
    ``window``'s own), ``USER(user_or_pk)`` or a user instance, ``BROADCAST``, or topics
    (strings, model instances, tuples). ``countdown`` (seconds) or ``eta`` (aware datetime
    or Unix time) delay delivery; ``expires`` (seconds after the eta, or a datetime) drops
    it when it could not be delivered in time. Inline SERVER handlers run before this
    returns and their exceptions propagate.
    """
    publication = Publication(name, to, window, kwargs, countdown, eta, expires)
    for handler in publication.inline:
        await handler.arun(publication.window, publication.kwargs)
    await _send(publication)
    return publication.id


def call(
    name: str,
    to: Any,
    *,
    window: WindowInfo | None = None,
    kwargs: dict[str, Any] | None = None,
    countdown: float | None = None,
    eta: dt.datetime | float | None = None,
    expires: dt.datetime | float | None = None,
) -> str:
    """Synchronous twin of :func:`acall`, for views, commands and threads.

    Inline SERVER handlers run in the calling thread. Not for use inside a running event
    loop: there, ``await acall(...)``.
    """
    publication = Publication(name, to, window, kwargs, countdown, eta, expires)
    for handler in publication.inline:
        handler.run(publication.window, publication.kwargs)
    run_sync(_send, publication)
    return publication.id
