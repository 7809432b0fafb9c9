"""DRF integration: live ``created``/``updated``/``deleted`` events, filtered per recipient."""

from .events import CREATED, DELETED, UPDATED, publish, publish_queryset
from .mixins import WINDOW_HEADER, LiveResourceMixin
from .observers import observe, publish_many, requested_by, tracking

__all__ = [
    "CREATED",
    "DELETED",
    "UPDATED",
    "WINDOW_HEADER",
    "LiveResourceMixin",
    "observe",
    "publish",
    "publish_many",
    "publish_queryset",
    "requested_by",
    "tracking",
]
