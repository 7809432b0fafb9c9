"""A frame on its way to sockets, in the form each protocol version needs.

Group messages cross the channel layer and sit in the history as version 1 frames, so
processes of two releases can share a layer during a rolling deploy. A socket that said
hello with protocol 2 gets a signal as a compact array instead (docs/protocol.md): the hub
builds that form once per message per process, when the first version 2 socket needs it,
however many sockets it then goes to. Other frames (events, resyncs...) are the same text
in both versions.

Version 2 also lets a socket's frames of one hub batch leave as one websocket message (a
JSON array of frames): each websocket message costs the server a write system call per
socket, which was most of a burst's CPU (docs/benchmarks.md).
"""

from __future__ import annotations

import json
from collections import deque

from .history import parse_seq

_SIGNAL_HEAD = '{"type":"signal",'
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

#: Most characters of frames joined into one version 2 websocket message. A burst is
#: sent in messages of this size at most: the client parses one message at a time, and a
#: server's write of it (and a slow client's outbox) stays in the same bounds as a frame's.
BATCH_CHARS = 65536


class Outgoing:
    """One frame for many sockets: the version 1 text, and the version 2 one built on demand.

    Nothing is parsed until a version 2 socket or a replay check needs it, and then once.
    """

    __slots__ = ("text", "_parsed", "_message_id", "_epoch", "_compact", "_with_epoch", "_position")

    def __init__(self, text: str) -> None:
        self.text = text
        self._parsed = not text.startswith(_SIGNAL_HEAD)  # only signals have another form
        self._message_id: str | None = None
        self._epoch: str | None = None
        self._compact: str | None = None
        self._with_epoch: str | None = None
        self._position: tuple[str, int, str | None] | None = None

    @property
    def message_id(self) -> str | None:
        """The signal's message id (None for other frames)."""
        if not self._parsed:
            self._parse()
        return self._message_id

    @property
    def position(self) -> tuple[str, int, str | None] | None:
        """The signal's (group alias, seq, epoch) in its group's history, or None."""
        if not self._parsed:
            self._parse()
        return self._position

    def compact(self, epoch: str | None) -> tuple[str, str | None]:
        """The version 2 text for a client in history epoch ``epoch``, and the epoch the
        client is in once it has read it (``epoch`` unless the message says otherwise)."""
        if not self._parsed:
            self._parse()
        if self._compact is None:
            return self.text, epoch  # not a signal: the same frame in both versions
        if self._epoch is None or self._epoch == epoch:
            return self._compact, epoch
        return self._with_epoch, self._epoch  # type: ignore[return-value]

    def _parse(self) -> None:
        self._parsed = True
        frame = json.loads(self.text)
        self._message_id = frame.get("id")
        head = [frame["signal"], frame["kwargs"]]
        seq = parse_seq(frame.get("seq"))
        if seq is None or not isinstance(frame.get("g"), str):
            self._compact = _encode(head)
            return
        self._position = (frame["g"], seq, frame.get("e"))
        head += [frame["g"], seq]
        others = frame.get("o")
        tail = [{a: parse_seq(s) for a, s in others.items()}] if others else []
        self._epoch = frame.get("e")
        self._with_epoch = _encode([*head, self._epoch, *tail])
        self._compact = _encode([*head, None, *tail]) if tail else _encode(head)


def join(texts: list[str]) -> list[str]:
    """Version 2 websocket messages carrying ``texts`` in order: one text alone, several as
    a JSON array of frames, each message at most ``BATCH_CHARS`` (one frame may be larger)."""
    if len(texts) == 1:
        return texts
    messages: list[str] = []
    start, size = 0, 0
    for index, text in enumerate(texts):
        if size and size + len(text) > BATCH_CHARS:
            messages.append(_batch(texts[start:index]))
            start, size = index, 0
        size += len(text) + 1
    messages.append(_batch(texts[start:]))
    return messages


def _batch(texts: list[str]) -> str:
    return texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]"


def take(waiting: deque[str]) -> tuple[str, list[str]]:
    """The next version 2 message from a window's outbox, and the texts it was made of: the
    frames of the messages at its head joined into one (up to ``BATCH_CHARS``), so a
    backlog leaves in few writes."""
    taken = [waiting.popleft()]
    size = len(taken[0])
    while waiting and size + len(waiting[0]) <= BATCH_CHARS:
        taken.append(waiting.popleft())
        size += len(taken[-1])
    if len(taken) == 1:
        return taken[0], taken
    return "[" + ",".join(_frames_of(text) for text in taken) + "]", taken


def _frames_of(text: str) -> str:
    """``text``'s frames as batch elements: a batch without its brackets, or the frame."""
    return text[1:-1] if text[:2] in ("[[", "[{") else text
