"""Window identity: who is behind a websocket, and the signed key that proves it.

Every page render issues its own key, so two tabs of one browser are two windows with their
own topics. The key is made with Django's signing: checking it needs no database or cache,
so a reconnect storm costs only CPU. It is bound to the user and to their session auth hash,
so logging out or changing the password makes it useless; a key issued to a token client
(see :mod:`floorchannels.credentials`) is bound to that token too.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.core import signing
from django.core.exceptions import ValidationError
from django.http.cookie import parse_cookie
from django.utils.crypto import salted_hmac

from . import credentials
from .conf import fc_settings
from .credentials import Credential
from .topics import BROADCAST_GROUP, serialize_topic, topic_group, user_group, window_group

SALT = "floorchannels.window"

#: Longest key :func:`load_key` reads; a longer one is refused as malformed.
MAX_KEY_LENGTH = 16384
#: Characters of a reconnect's hello frame besides the key and its resume positions
#: (``{"type":"hello","window_key":"","protocol":1,"resume":{"e":"<64>","seqs":{}}}``).
_HELLO_FIXED = 140
#: Characters of one group's position in ``resume.seqs``: ``"<alias>":"<20 digits>-0",``.
_RESUME_ENTRY = 40


class WindowKeyError(Exception):
    """Base of the reasons a window key is refused; ``close_code`` goes to the client, with
    the exception's message as the close reason (short: a close frame holds 123 bytes)."""

    close_code = 4401
    reason = "invalid_key"


class WindowKeyTooLarge(ValueError):
    """The window would be refused when it connects: its key, or the hello frame that
    carries it with a position for each of its groups, is over what the server reads.
    Raised when the key is issued, so the page is never served a key that cannot work."""


class InvalidKey(WindowKeyError):
    """Malformed, tampered with, or signed with another secret."""


class ExpiredKey(WindowKeyError):
    close_code = 4410
    reason = "expired_key"


class KeyRefused(WindowKeyError):
    """Genuine, but not for this session: another user, logged out, password changed, or
    the token it was issued for deleted."""

    close_code = 4403
    reason = "key_refused"


@dataclass(eq=False, slots=True)
class WindowInfo:
    """What a signal handler knows about the window it serves.

    ``window_id`` is None for calls that come from the server itself (a view, a command).
    ``topics`` holds the canonical form of the topics the view granted.
    """

    window_id: str | None = None
    user_pk: str | None = None
    topics: tuple[str, ...] = ()
    #: The granted topics where this window is shown in the presence list.
    presence: tuple[str, ...] = ()
    auth_hash: str = ""
    issued_at: float = 0.0
    #: What authenticated the request the key was issued for (session, or a token).
    credential: Credential = field(default_factory=Credential)
    _user: Any = field(default=None, repr=False)

    @property
    def expires(self) -> float:
        """When the key stops opening this window: its lifetime, or its token's expiry."""
        expires = self.issued_at + fc_settings.WINDOW_KEY_MAX_AGE
        if self.credential.expires is not None:
            expires = min(expires, self.credential.expires)
        return expires

    @property
    def user(self) -> Any:
        """The window's user, loaded on first use when the window was rebuilt from its pk."""
        if self._user is None:
            if self.user_pk is None:
                self._user = anonymous_user()
            else:
                model = auth.get_user_model()
                pk = model._meta.pk.to_python(self.user_pk)
                self._user = model._default_manager.filter(pk=pk).first() or anonymous_user()
        return self._user

    @property
    def groups(self) -> list[str]:
        """Every group this window belongs to."""
        groups = [BROADCAST_GROUP]
        if self.window_id:
            groups.append(window_group(self.window_id))
        if self.user_pk is not None:
            groups.append(user_group(self.user_pk))
        groups.extend(topic_group(topic) for topic in self.topics)
        return groups

    def has_topic(self, topic: Any) -> bool:
        return serialize_topic(topic) in self.topics

    def to_message(self) -> dict[str, Any]:
        """A plain dict that crosses the channel layer (to a worker)."""
        return {"w": self.window_id, "u": self.user_pk, "t": list(self.topics)}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> WindowInfo:
        return cls(window_id=data.get("w"), user_pk=data.get("u"), topics=tuple(data.get("t") or ()))

    def to_task(self) -> dict[str, Any]:
        """The window as a task argument: a JSON-safe dict that any task backend stores.

        Give it to your own task (``report.enqueue(window=window.to_task(), ...)``) and rebuild
        the window there with :meth:`from_task`: the task can then ``call()`` this window
        (``WINDOW``), its user (``USER``) or its topics, from whatever process runs it. It
        holds the window id, the user's pk and the granted topics; none of them is a secret
        (the key is what proves a window, and it stays out).
        """
        return {"window_id": self.window_id, "user_pk": self.user_pk, "topics": list(self.topics)}

    @classmethod
    def from_task(cls, data: dict[str, Any]) -> WindowInfo:
        """The window :meth:`to_task` described; ``ValueError`` for anything else (a task
        stored by hand, another argument given by mistake), rather than a window that
        quietly reaches no one."""
        if not isinstance(data, dict) or not {"window_id", "user_pk", "topics"} <= data.keys():
            raise ValueError(f"Not a window's task argument (see WindowInfo.to_task()): {data!r}")
        window_id, user_pk, topics = data["window_id"], data["user_pk"], data["topics"]
        if window_id is not None and not isinstance(window_id, str):
            raise ValueError(f"A window's task argument has a window_id that is not a string: {window_id!r}")
        if user_pk is not None and not isinstance(user_pk, str | int):
            raise ValueError(f"A window's task argument has a user_pk that is not a string: {user_pk!r}")
        if not isinstance(topics, list | tuple) or not all(isinstance(t, str) for t in topics):
            raise ValueError(
                f"A window's task argument has topics that are not a list of strings: {topics!r}"
            )
        return cls(
            window_id=window_id, user_pk=None if user_pk is None else str(user_pk), topics=tuple(topics)
        )


@functools.cache
def anonymous_user() -> Any:
    """The one AnonymousUser every anonymous window shares (it holds no state of its own)."""
    # django.contrib.auth.models cannot be imported before the app registry is ready, and
    # this module is imported by the package root.
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser()


def _hash_token(user: Any) -> str:
    """A short digest of the session auth hash: binds the key without publishing the hash."""
    return hashlib.sha256(user.get_session_auth_hash().encode()).hexdigest()[:20]


#: Salt of the tag that binds a window id to its user (see :func:`is_own_window`).
_OWNER_SALT = "floorchannels.window-owner"


def _owner_tag(nonce: str, user_pk: str, secret: str | None = None) -> str:
    return salted_hmac(_OWNER_SALT, f"{nonce}:{user_pk}", secret=secret, algorithm="sha256").hexdigest()[:16]


def new_window_id(user_pk: str | None) -> str:
    """A random window id that carries a tag of its user.

    Window ids are not secret (presence lists them), so a REST request naming a window (the
    ``X-Floorchannels-Window`` header) proves nothing by itself; the tag lets the server check,
    without any shared state, that the window belongs to the requesting user.
    """
    nonce = secrets.token_hex(12)
    return nonce + (_owner_tag(nonce, user_pk) if user_pk else secrets.token_hex(8))


def is_own_window(window_id: Any, user: Any) -> bool:
    """True when ``window_id`` was issued to ``user`` (never for anonymous users)."""
    if not isinstance(window_id, str) or len(window_id) != 40 or not getattr(user, "is_authenticated", False):
        return False
    nonce, tag = window_id[:24], window_id[24:]
    secrets_ = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    return any(hmac.compare_digest(tag, _owner_tag(nonce, str(user.pk), secret)) for secret in secrets_)


def new_window(
    request: Any,
    topics: Iterable[Any] = (),
    presence: Iterable[Any] = (),
    credential: Credential | None = None,
) -> WindowInfo:
    """Describe a new window for the page being rendered for ``request`` (``credential``:
    what authenticated it, when not the session)."""
    user = getattr(request, "user", None)
    authenticated = bool(user is not None and user.is_authenticated)
    shown = tuple(dict.fromkeys(serialize_topic(topic) for topic in presence))
    return WindowInfo(
        window_id=new_window_id(str(user.pk) if authenticated else None),
        user_pk=str(user.pk) if authenticated else None,
        # A presence topic is granted too: being listed in a topic means receiving it.
        topics=tuple(dict.fromkeys([*(serialize_topic(topic) for topic in topics), *shown])),
        presence=shown,
        auth_hash=_hash_token(user) if authenticated else "",
        issued_at=time.time(),
        credential=credential if authenticated and credential is not None else Credential(),
        _user=user if authenticated else anonymous_user(),
    )


def sign(window: WindowInfo) -> str:
    """Make the key for ``window``, stamped now."""
    window.issued_at = time.time()
    payload = {
        "w": window.window_id,
        "u": window.user_pk,
        "h": window.auth_hash,
        "t": list(window.topics),
        "p": list(window.presence),
        "i": int(window.issued_at),
    }
    bound = window.credential.to_payload()
    if bound is not None:
        payload["c"] = bound
    return _signer().sign_object(payload, compress=True)


def _signer() -> signing.TimestampSigner:
    """The signer of window keys, as ``signing.dumps``/``loads`` would build it for every
    call: one per secret instead, so checking a key does not build one per connect."""
    return _signer_for(settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))


@functools.lru_cache(maxsize=4)
def _signer_for(secret: str, fallbacks: tuple[str, ...]) -> signing.TimestampSigner:
    return signing.TimestampSigner(key=secret, fallback_keys=fallbacks, salt=SALT)


def window_key(
    request: Any,
    topics: Iterable[Any] = (),
    presence: Iterable[Any] = (),
    credential: Credential | None = None,
) -> str:
    """Issue the key for a new window of this page, granting it ``topics``.

    ``presence`` lists topics (granted too) where the window announces itself: other
    windows of the topic see it in ``fc.presence.list`` and get join/leave diffs.

    The window is remembered on the request, so the ``{% floorchannels_script %}`` tag in the
    same response reuses it instead of issuing a second one.

    ``credential`` says what authenticated ``request`` when it was not the session (a DRF
    token, a JWT: see :mod:`floorchannels.credentials`); the key is then bound to it and
    opens a socket without any cookie. The key view (:mod:`floorchannels.views`) passes it.
    """
    window = new_window(request, topics, presence, credential)
    key = sign(window)
    check_size(window, key)
    request.floorchannels_window = window
    request.floorchannels_window_key = key
    return key


def hello_size(key: str, groups: int) -> int:
    """The longest hello frame a client sends with ``key``: on a reconnect it carries a
    position for each of the window's ``groups`` (see docs/protocol.md, Recovery)."""
    return _HELLO_FIXED + len(key) + groups * _RESUME_ENTRY


def check_size(window: WindowInfo, key: str) -> None:
    """Raise :class:`WindowKeyTooLarge` unless the server will accept ``key`` for ``window``."""
    groups = len(window.groups)
    limit = fc_settings.MAX_FRAME_SIZE
    needed = hello_size(key, groups)
    if needed > limit:
        fit = max(0, (limit - _HELLO_FIXED - len(key)) // _RESUME_ENTRY - (groups - len(window.topics)))
        raise WindowKeyTooLarge(
            f"This window would be refused when it reconnects: with {len(window.topics):,} topics "
            f"its hello frame needs up to {needed:,} characters, over MAX_FRAME_SIZE ({limit:,}). "
            f"Grant fewer topics (about {fit:,} fit) or raise MAX_FRAME_SIZE."
        )
    if len(key) > MAX_KEY_LENGTH:
        raise WindowKeyTooLarge(
            f"The window key would be {len(key):,} characters, over the {MAX_KEY_LENGTH:,} the "
            f"server reads ({len(window.topics):,} topics granted): grant fewer or shorter topics."
        )


def key_owner(key: Any) -> str | None:
    """The user pk a key of ours was issued to, whatever its age; None for an anonymous key
    or anything that is not a key of ours."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        return None
    try:
        payload = _signer().unsign_object(key)
    except (signing.BadSignature, ValueError):
        return None
    owner = payload.get("u") if isinstance(payload, dict) else None
    return None if owner is None else str(owner)


def load_key(key: Any) -> WindowInfo:
    """Check a key's signature and age; return the window it describes (user not yet checked)."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKey("invalid window key: missing or malformed")
    try:
        payload = _signer().unsign_object(key, max_age=fc_settings.WINDOW_KEY_MAX_AGE)
    except signing.SignatureExpired:
        raise ExpiredKey("window key expired") from None
    except (signing.BadSignature, ValueError):
        raise InvalidKey("invalid window key: bad signature") from None
    try:
        window_id, user_pk, auth_hash, topics, issued = (payload[k] for k in "wuhti")
        credential = Credential.from_payload(payload.get("c"))
    except (KeyError, TypeError, ValueError):
        raise InvalidKey("invalid window key: malformed") from None
    if not isinstance(window_id, str) or not isinstance(topics, list):
        raise InvalidKey("invalid window key: malformed")
    if credential.kind != credentials.SESSION and user_pk is None:
        raise InvalidKey("invalid window key: malformed")
    if credential.expires is not None and time.time() >= credential.expires:
        raise ExpiredKey("the token this window key was issued for has expired")
    return WindowInfo(
        window_id=window_id,
        user_pk=None if user_pk is None else str(user_pk),
        topics=tuple(str(topic) for topic in topics),
        presence=tuple(str(topic) for topic in payload.get("p") or () if str(topic) in topics),
        auth_hash=str(auth_hash or ""),
        issued_at=float(issued),
        credential=credential,
    )


def session_of(scope: dict[str, Any]) -> Any:
    """The Django session of a websocket: the one session middleware put in the scope, or
    one read from the Cookie header (lazily: a SessionStore touches storage on first use).

    Reading it here, rather than wrapping every socket in Channels' session middleware,
    keeps anonymous sockets free of session objects altogether.
    """
    session = scope.get("session")
    if session is not None:
        return session
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            key = parse_cookie(value.decode("latin1")).get(settings.SESSION_COOKIE_NAME)
            if key:
                return import_module(settings.SESSION_ENGINE).SessionStore(key)
            break
    return None


def _session_user(session: Any) -> Any:
    # django.contrib.auth.get_user() reads only request.session: it checks the session's
    # auth hash against the user's current one (with SECRET_KEY_FALLBACKS) and flushes a
    # stale session, exactly as an HTTP request would.
    return auth.get_user(SimpleNamespace(session=session))


#: Reasons of the refusals (close 4403), as the client reads them.
_SESSION_ENDED = "key was issued to another user or the session has ended"
_CREDENTIALS_CHANGED = "the user's password changed or the user was deactivated"


def check_user(window: WindowInfo, scope: dict[str, Any]) -> Any:
    """Match a key's user against the websocket's session, or for a key issued to a token
    client, against that token; return the user or raise KeyRefused.

    Runs database queries only for keys issued to a signed-in user. Synchronous: call it
    from a thread.
    """
    if window.user_pk is None:
        return anonymous_user()
    if window.credential.kind != credentials.SESSION:
        return _token_user(window)
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        session = session_of(scope)
        if session is None:
            raise KeyRefused(_SESSION_ENDED)
        user = _session_user(session)
    if not user.is_authenticated or str(user.pk) != window.user_pk:
        raise KeyRefused(_SESSION_ENDED)
    if not user.is_active or _hash_token(user) != window.auth_hash:
        raise KeyRefused(_CREDENTIALS_CHANGED)
    return user


def _token_user(window: WindowInfo) -> Any:
    """The user of a key issued to a token client: no session to compare with, so the user
    is read by pk and the token is checked to still exist (see credentials.still_valid)."""
    model = auth.get_user_model()
    try:
        pk = model._meta.pk.to_python(window.user_pk)
        user = model._default_manager.filter(pk=pk).first()
    except (ValidationError, ValueError, TypeError):  # a pk of another type: no such user
        user = None
    if user is None:
        raise KeyRefused("the user this key was issued to no longer exists")
    if not getattr(user, "is_active", True) or _hash_token(user) != window.auth_hash:
        raise KeyRefused(_CREDENTIALS_CHANGED)
    reason = credentials.still_valid(window.credential, user)
    if reason is not None:
        raise KeyRefused(reason)
    return user
