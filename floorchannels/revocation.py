"""Live revocation: logging out, changing the password or deactivating a user closes that
user's open sockets at once, in every process — not only at their next reconnect.

The web process that sees the change sends one ``fc.revoke`` message to the user's group;
each hub closes the matching sockets with 4403 (``key_refused``), which the JS client treats
as final.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_save, pre_save

from . import messages, metrics
from .layers import channel_layer, group_send
from .protocol import CloseCode
from .syncloop import run_sync
from .tasks import spawn
from .topics import user_group

logger = logging.getLogger("floorchannels.revocation")


def session_hash(session_key: str | None) -> str | None:
    """A digest that names a session without carrying its key."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:24] if session_key else None


def revoke(user_pk: Any, session_key: str | None = None, reason: str = "revoked") -> None:
    """Close the open windows of a user (of one session only, when ``session_key`` is given)."""
    message = messages.REVOKE.build(
        group=user_group(user_pk), session=session_hash(session_key), reason=reason
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
    for socket in list(hub.groups.get(message.get("group", ""), ())):
        if session is None or getattr(socket, "session_hash", None) == session:
            metrics.increment("revoked_windows")
            logger.info("Closing window %s: %s.", socket.window_id, message.get("reason"))
            spawn(socket.close(CloseCode.KEY_REFUSED), "close a revoked window")


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


def connect_signals() -> None:
    user_model = get_user_model()
    user_logged_out.connect(_on_logout, dispatch_uid="floorchannels.revoke.logout")
    pre_save.connect(_before_user_save, sender=user_model, dispatch_uid="floorchannels.revoke.pre")
    post_save.connect(_after_user_save, sender=user_model, dispatch_uid="floorchannels.revoke.post")
