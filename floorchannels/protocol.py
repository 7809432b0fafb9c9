"""The wire protocol: frame types, error codes and close codes, documented in docs/protocol.md.

Both ends depend on these names; keeping them in one module makes a protocol change a
visible, single-file change.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

#: The newest protocol version; a client says which one it speaks in its hello.
VERSION = 2
#: Versions served: a client of an earlier release keeps working (docs/protocol.md#versions).
VERSIONS = (1, 2)

# Error codes carried in reply.error.code and error.code.
INVALID_FRAME = "invalid_frame"
UNKNOWN_SIGNAL = "unknown_signal"
FORBIDDEN = "forbidden"
INVALID_ARGUMENTS = "invalid_arguments"
SERVER_ERROR = "server_error"
TIMEOUT = "timeout"
RATE_LIMITED = "rate_limited"
UNKNOWN_RESOURCE = "unknown_resource"
NOT_FOUND = "not_found"
TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
TOO_MANY_TOPICS = "too_many_topics"


class CloseCode:
    """Websocket close codes. 4xxx mirror the HTTP status they resemble."""

    NORMAL = 1000
    #: The server is shutting down: reconnect at once (to another process). Not 1001:
    #: daphne (autobahn) lets applications send only 1000 and 3000-4999.
    GOING_AWAY = 4503
    BAD_HELLO = 4400
    INVALID_KEY = 4401
    KEY_REFUSED = 4403
    HELLO_TIMEOUT = 4408
    #: Another socket opened this window (same window key) since: the newest one wins.
    REPLACED = 4409
    EXPIRED_KEY = 4410
    TOO_LARGE = 4413
    RATE_LIMITED = 4429
    #: The window did not read what was sent to it fast enough: its outbound buffer passed
    #: MAX_BUFFERED_BYTES. The client reconnects and resumes from history.
    SLOW_CLIENT = 4507
    #: The server cannot serve the window now (its channel layer is unreachable).
    UNAVAILABLE = 4500


#: The reason sent with each close code (ASGI ``websocket.close`` ``reason``), for a
#: developer reading the close event. Reasons are short: a close frame holds 123 bytes.
CLOSE_REASONS: dict[int, str] = {
    CloseCode.NORMAL: "",
    CloseCode.GOING_AWAY: "server shutting down",
    CloseCode.BAD_HELLO: "the first frame must be a hello for protocol 1 or 2",
    CloseCode.INVALID_KEY: "invalid window key",
    CloseCode.KEY_REFUSED: "key was issued to another user or the session has ended",
    CloseCode.HELLO_TIMEOUT: "no hello frame in time",
    CloseCode.REPLACED: "replaced by a newer connection of this window",
    CloseCode.EXPIRED_KEY: "window key expired",
    CloseCode.TOO_LARGE: "frame too large",
    CloseCode.RATE_LIMITED: "too many frames",
    CloseCode.SLOW_CLIENT: "client not reading fast enough",
    CloseCode.UNAVAILABLE: "server cannot reach its channel layer",
}
#: Longest close reason, in UTF-8 bytes (a close frame's payload is 125 bytes, 2 of them the code).
MAX_CLOSE_REASON = 123


def close_reason(code: int, reason: str | None = None) -> str:
    """``reason``, or the code's usual one, cut to what a close frame can carry."""
    text = CLOSE_REASONS.get(code, "") if reason is None else reason
    data = text.encode()
    if len(data) > MAX_CLOSE_REASON:
        text = data[:MAX_CLOSE_REASON].decode(errors="ignore")
    return text


class ProtocolError(Exception):
    """A frame the server cannot act on; answered with an error, never fatal."""

    def __init__(self, message: str, code: str = INVALID_FRAME) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


#: ``allow_nan=False``: Python's json writes NaN and Infinity by default, which are not
#: JSON. A browser's JSON.parse refuses the whole frame, so a reply carrying one would be
#: lost and its call would only time out. Refusing here turns it into an error the sender sees.
_encoder = DjangoJSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(frame: dict[str, Any]) -> str:
    """Serialise one frame. Dates, decimals, UUIDs and lazy strings become JSON strings.

    Raises ``ValueError`` for NaN and infinite floats and ``TypeError`` for values JSON
    cannot hold: nothing that is not strict JSON reaches the wire.
    """
    return _encoder.encode(frame)


def decode(text: str) -> dict[str, Any]:
    """Parse one client frame, raising ProtocolError for anything that is not an object."""
    try:
        frame = json.loads(text)
    except ValueError:
        raise ProtocolError("The frame is not valid JSON.") from None
    except RecursionError:
        raise ProtocolError("The frame is nested too deeply.") from None
    if not isinstance(frame, dict):
        raise ProtocolError("A frame must be a JSON object.")
    if not isinstance(frame.get("type"), str):
        raise ProtocolError("A frame needs a string 'type'.")
    return frame


def reply_ok(call_id: Any, result: Any, *, queued: bool = False) -> dict[str, Any]:
    frame = {"type": "reply", "id": call_id, "ok": True, "result": result}
    if queued:
        frame["queued"] = True
    return frame


def reply_error(call_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"type": "reply", "id": call_id, "ok": False, "error": {"code": code, "message": message}}


def error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}
