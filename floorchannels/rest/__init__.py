"""DRF integration: live ``created``/``updated``/``deleted`` events, filtered per recipient."""

from .events import CREATED, DELETED, UPDATED, publish, publish_queryset
from .mixins import WINDOW_HEADER, LiveResourceMixin

__all__ = [
    "CREATED",
    "DELETED",
    "UPDATED",
    "WINDOW_HEADER",
    "LiveResourceMixin",
    "publish",
    "publish_queryset",
]
