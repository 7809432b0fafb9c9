"""Live revocation: logging out, changing the password, deactivating a user or deleting the
token a window was opened with closes those sockets at once, in every process — not only at
their next reconnect.

The web process that sees the change sends one ``fc.revoke`` message to the user's group;
each hub closes the matching sockets with 4403 (``key_refused``), which the JS client treats
as final. A message may name one credential (``session``: the digest of a session key, or of
a token, see floorchannels.credentials): then only the sockets opened with it close.

An ``fc.replace`` message to a window's group closes the other sockets of that window with
4409 (``replaced``): a window key opens one socket at a time, the newest.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save

from . import credentials, messages, metrics
from .layers import channel_layer, group_send
from .protocol import CloseCode
from .syncloop import run_sync
from .tasks import spawn
from .topics import BROADCAST_GROUP, user_group, window_group

logger = logging.getLogger("floorchannels.revocation")


def session_hash(session_key: str | None) -> str | None:
    """A digest that names a session without carrying its key."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:24] if session_key else None


def revoke(
    user_pk: Any, session_key: str | None = None, reason: str = "revoked", *, credential: str | None = None
) -> None:
    """Close the open windows of a user: of one session only, when ``session_key`` is given,
    or of one token, when ``credential`` (its digest, floorchannels.credentials.digest) is."""
    message = messages.REVOKE.build(
        group=user_group(user_pk), session=credential or session_hash(session_key), reason=reason
    )
    try:
        run_sync(group_send, channel_layer(), message["group"], message)
    except Exception:
        # The keys are invalid anyway (session gone or hash changed): sockets are refused
        # at their next reconnect. Failing the logout or the save would be worse.
        logger.exception("Could not revoke the windows of user %s.", user_pk)


def on_revoke(hub: Any, message: dict[str, Any]) -> None:
    """Hub handler: close the matching local sockets."""
    session = message.get("session")
    reason = message.get("reason")
    for socket in list(hub.groups.get(message.get("group", ""), ())):
        if session is None or getattr(socket, "credential", None) == session:
            metrics.increment("revoked_windows")
            logger.info("Closing window %s: %s.", socket.window_id, reason)
            spawn(socket.close(CloseCode.KEY_REFUSED, _REASONS.get(reason)), "close a revoked window")


#: Close reasons sent for each revoke reason (the message's ``reason``, set by this module).
_REASONS = {
    "logged out": "the session this window key was issued for has ended",
    "credentials changed": "the user's password changed or the user was deactivated",
    "token deleted": "the token this window key was issued for was deleted",
}


# One socket per window ------------------------------------------------------------------

#: Close the sockets of window ``group`` older than (``at``, ``keep``): see announce_window.
#: Declared here and added to messages.TYPES by :func:`connect_signals`.
REPLACE = messages.REPLACE
REPLACE_MANY = messages.REPLACE_MANY


def _socket_id(hub: Any, socket: Any) -> str:
    """Names a socket among every process's: the hub's layer channel and the socket's id."""
    return f"{hub.channel_name}#{id(socket):x}"


#: Most windows named in one announcement message.
ANNOUNCE_BATCH = 500
#: Seconds announcements gather before they are sent: a connect does not wait for it, and
#: an older socket of a window stays open this much longer.
ANNOUNCE_DELAY = 0.05
#: Most announcements waiting per process; past it the oldest are dropped (counted, logged).
ANNOUNCE_MAX_PENDING = 20_000


def announce_window(socket: Any) -> None:
    """Tell every process that ``socket`` now serves its window: older sockets of the same
    window (the same window key, or its refreshed copy) are closed with 4409.

    "Older" is by hello time, ties broken by socket id, so two sockets that open at once in
    two processes never close each other: exactly one stays. A client's own reconnect is the
    newest socket, so it stays and the socket it left behind (maybe half-open) goes.

    A message per connect was a tenth of a connect's CPU in a reconnect storm: announcements
    gather for ``ANNOUNCE_DELAY`` (and while one is on its way) and leave together, in one
    message to BROADCAST's carrier, which every process with a socket is in.
    """
    hub = socket.hub
    announcements = _announcements.get(hub)
    if announcements is None:
        announcements = _announcements[hub] = _Announcements(hub)
    announcements.add([window_group(socket.window_id), _socket_id(hub, socket), socket.opened_at])


class _Announcements:
    """One process's announcements waiting to be sent; one message in flight at a time."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.pending: list[list[Any]] = []
        self.sending = False
        self.dropped = 0

    def add(self, entry: list[Any]) -> None:
        self.pending.append(entry)
        if len(self.pending) > ANNOUNCE_MAX_PENDING:
            del self.pending[0]
            self.dropped += 1
            metrics.increment("announcements_dropped")
            if self.dropped == 1:
                logger.warning(
                    "Over %d window announcements waiting: the oldest are dropped (metric "
                    "announcements_dropped); their windows' older sockets, if any, stay open.",
                    ANNOUNCE_MAX_PENDING,
                )
        if not self.sending:
            self.sending = True
            spawn(self._send(), "announce windows", self.hub._tasks)

    async def _send(self) -> None:
        try:
            await asyncio.sleep(ANNOUNCE_DELAY)
            while self.pending:
                batch = self.pending[:ANNOUNCE_BATCH]
                del self.pending[:ANNOUNCE_BATCH]
                try:
                    await group_send(self.hub.layer, BROADCAST_GROUP, REPLACE_MANY.build(windows=batch))
                except Exception:
                    # The windows work; only an older socket of them, if any, stays open.
                    logger.warning(
                        "Could not announce %d window(s) to other processes.", len(batch), exc_info=True
                    )
        finally:
            self.sending = False


_announcements: weakref.WeakKeyDictionary[Any, _Announcements] = weakref.WeakKeyDictionary()


def on_replaced(hub: Any, message: dict[str, Any]) -> None:
    """Hub handler: close the local sockets of the window older than the announced one."""
    _close_older(hub, message["group"], message["keep"], message["at"])


def on_replaced_many(hub: Any, message: dict[str, Any]) -> None:
    """Hub handler of announcements sent together (see announce_window)."""
    groups = hub.groups
    for entry in message["windows"]:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)):
            messages.skip(messages.InvalidMessage(REPLACE_MANY.name, "malformed window entry"), "the hub")
            continue
        group, keep, at = entry
        if group in groups and isinstance(keep, str) and isinstance(at, int | float):
            _close_older(hub, group, keep, at)


def _close_older(hub: Any, group: str, keep: str, at: float) -> None:
    newest = (float(at), keep)
    for socket in list(hub.groups.get(group, ())):
        if (getattr(socket, "opened_at", 0.0), _socket_id(hub, socket)) < newest:
            metrics.increment("replaced_windows")
            logger.info("Closing window %s: a newer socket opened it.", socket.window_id)
            spawn(socket.close(CloseCode.REPLACED), "close a replaced window")


def _on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None and user.pk is not None:
        session = getattr(request, "session", None)
        revoke(user.pk, getattr(session, "session_key", None), "logged out")


def _before_user_save(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if instance.pk is None or kwargs.get("raw"):
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return  # e.g. login's last_login update: nothing to compare, no query
    old = sender._default_manager.filter(pk=instance.pk).values("password", "is_active").first()
    if old and (old["password"] != instance.password or (old["is_active"] and not instance.is_active)):
        instance._floorchannels_revoke = True


def _after_user_save(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.__dict__.pop("_floorchannels_revoke", False):
        pk = instance.pk
        transaction.on_commit(lambda: revoke(pk, reason="credentials changed"))


def _token_deleted(kind: str, secret_field: str) -> Any:
    """A post_delete receiver closing the sockets opened with the deleted token."""

    def receiver(sender: Any, instance: Any, **kwargs: Any) -> None:
        user_pk, secret = instance.user_id, getattr(instance, secret_field)
        credential = credentials.digest(kind, secret)
        transaction.on_commit(lambda: revoke(user_pk, reason="token deleted", credential=credential))

    return receiver


_on_token_deleted = _token_deleted(credentials.TOKEN, "key")
_on_knox_deleted = _token_deleted(credentials.KNOX, "digest")


def connect_signals() -> None:
    user_model = get_user_model()
    user_logged_out.connect(_on_logout, dispatch_uid="floorchannels.revoke.logout")
    pre_save.connect(_before_user_save, sender=user_model, dispatch_uid="floorchannels.revoke.pre")
    post_save.connect(_after_user_save, sender=user_model, dispatch_uid="floorchannels.revoke.post")
    # Deleting a token (DRF's, knox's: logout, rotation) closes what it opened.
    if apps.is_installed("rest_framework.authtoken"):
        # The admin deletes through the proxy model, which sends its own signal.
        from rest_framework.authtoken.models import Token, TokenProxy

        for model in (Token, TokenProxy):
            post_delete.connect(
                _on_token_deleted, sender=model, dispatch_uid=f"floorchannels.revoke.{model.__name__}"
            )
    if apps.is_installed("knox"):
        from knox.models import AuthToken

        post_delete.connect(_on_knox_deleted, sender=AuthToken, dispatch_uid="floorchannels.revoke.knox")
