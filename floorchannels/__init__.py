"""floorchannels: realtime signals between Django and browser windows, on Django Channels."""

from . import browser
from .dispatch import PublishError, UnsendableSignal, acall, call
from .permissions import everyone, has_perm, is_authenticated, is_staff, is_superuser, server_side
from .queues import QueuedCall, current_call
from .registry import signal
from .targets import BROADCAST, SERVER, USER, WINDOW
from .windows import WindowInfo, WindowKeyTooLarge, window_key

__version__ = "0.1.0"

__all__ = [
    "BROADCAST",
    "PublishError",
    "QueuedCall",
    "SERVER",
    "USER",
    "UnsendableSignal",
    "WINDOW",
    "WindowInfo",
    "WindowKeyTooLarge",
    "acall",
    "browser",
    "call",
    "current_call",
    "everyone",
    "has_perm",
    "is_authenticated",
    "is_staff",
    "is_superuser",
    "server_side",
    "signal",
    "window_key",
]
