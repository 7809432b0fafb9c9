"""``LiveResourceMixin``: a DRF viewset whose writes reach subscribed browsers live."""

from __future__ import annotations

from typing import Any, Literal

from .events import CREATED, DELETED, UPDATED, publish
from .resources import register

#: The header a page sets on its REST requests to name its own window (no echo).
WINDOW_HEADER = "X-Floorchannels-Window"


class LiveResourceMixin:
    """Publish ``created``/``updated``/``deleted`` from the viewset's write paths.

    Put it before ``ModelViewSet`` (or any ``GenericViewSet``)::

        class NoteViewSet(LiveResourceMixin, viewsets.ModelViewSet):
            live_resource = "notes"

    Who receives an event is decided per window by this viewset's own permission classes,
    ``get_queryset()`` and object permissions, for that window's user. Partitions narrow
    the fan-out first: override :meth:`get_live_partitions` (from the object) and
    :meth:`get_live_subscription_partitions` (from the subscriber) so that a window is only
    asked about objects it is likely to see, e.g. by owner or tenant.
    """

    #: The name browsers subscribe to; defaults to the model's ``app_label.model_name``.
    live_resource: str | None = None
    #: ``"data"`` sends the serializer's output; ``"id"`` sends only the pk.
    live_payload: Literal["data", "id"] = "data"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register(cls)

    def get_live_partitions(self, obj: Any) -> list[Any]:
        """The partitions an object is published to (computed from the object only)."""
        return ["*"]

    def get_live_subscription_partitions(self) -> list[Any]:
        """The partitions a subscriber (``self.request.user``) listens to."""
        return ["*"]

    def _live_window(self) -> str | None:
        request = getattr(self, "request", None)
        return request.headers.get(WINDOW_HEADER) if request is not None else None

    def perform_create(self, serializer: Any) -> None:
        super().perform_create(serializer)
        publish(self, serializer.instance, CREATED, window_id=self._live_window())

    def perform_update(self, serializer: Any) -> None:
        before = self.get_live_partitions(serializer.instance)
        super().perform_update(serializer)
        publish(self, serializer.instance, UPDATED, partitions_before=before, window_id=self._live_window())

    def perform_destroy(self, instance: Any) -> None:
        publish(self, instance, DELETED, window_id=self._live_window())
        super().perform_destroy(instance)
