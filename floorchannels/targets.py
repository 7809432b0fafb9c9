"""Where ``call()`` sends a signal: SERVER, WINDOW, USER, BROADCAST, a user, or topics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model

from .topics import BROADCAST_GROUP, group_for_topic, user_group, window_group
from .windows import WindowInfo


class Target:
    """A named destination; compare with ``is``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


class UserTarget(Target):
    """``USER`` is the calling window's user; ``USER(user_or_pk)`` is any user."""

    def __init__(self, pk: Any = None) -> None:
        super().__init__("USER" if pk is None else f"USER({pk!r})")
        self.pk = pk

    def __call__(self, user_or_pk: Any) -> UserTarget:
        pk = getattr(user_or_pk, "pk", user_or_pk)
        if pk is None:
            raise ValueError("USER() needs a saved user or a primary key.")
        return UserTarget(pk)


SERVER = Target("SERVER")
"""The Python handlers of the signal: run inline in the caller, or on a worker when the
handler was registered with ``queue=``. Browsers are not reached through it."""

WINDOW = Target("WINDOW")
"""The one browser window of ``window=...``: in a handler, the window that called."""

BROADCAST = Target("BROADCAST")
"""Every connected window, anonymous ones included."""

USER = UserTarget()
"""Every window of the ``window=...``'s signed-in user, in all their tabs and devices.

``USER(user_or_pk)`` names any user's windows instead; a user instance as a target does
the same. Anonymous windows have no user group."""


def groups_for(targets: Iterable[Any], window: WindowInfo | None) -> list[str]:
    """The channel-layer groups for every non-SERVER target, without repeats, in order."""
    user_model = get_user_model()
    groups: dict[str, None] = {}
    for target in targets:
        if target is SERVER:
            continue
        if target is BROADCAST:
            groups[BROADCAST_GROUP] = None
        elif target is WINDOW:
            if window is None or not window.window_id:
                raise ValueError("WINDOW needs the window=... of a browser window.")
            groups[window_group(window.window_id)] = None
        elif isinstance(target, UserTarget):
            pk = target.pk
            if pk is None:
                if window is None or window.user_pk is None:
                    raise ValueError("USER needs window=... of a signed-in user's window, or USER(user).")
                pk = window.user_pk
            groups[user_group(pk)] = None
        elif isinstance(target, user_model):
            groups[user_group(USER(target).pk)] = None
        elif isinstance(target, Target):
            raise ValueError(f"Unknown target {target!r}.")
        else:
            groups[group_for_topic(target)] = None
    return list(groups)
