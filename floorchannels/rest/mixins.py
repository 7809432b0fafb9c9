"""``LiveResourceMixin``: a DRF viewset whose writes reach subscribed browsers live."""

from __future__ import annotations

from typing import Any, Literal

from ..windows import is_own_window
from .events import CREATED, DELETED, UPDATED, publish
from .observers import is_observed, requested_by
from .resources import register

#: The header a page sets on its REST requests to name its own window: that window's copy of
#: the events it causes is marked ``echo`` (only when the window is the requester's own).
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

    get_live_partitions.single_partition = True  # type: ignore[attr-defined]

    def get_live_subscription_partitions(self) -> list[Any]:
        """The partitions a subscriber (``self.request.user``) listens to."""
        return ["*"]

    def _live_window(self) -> str | None:
        """The requester's own window named in the header, if it is theirs (else None)."""
        request = getattr(self, "request", None)
        if request is None:
            return None
        window_id = request.headers.get(WINDOW_HEADER)
        return window_id if is_own_window(window_id, request.user) else None

    def _publishes_itself(self, obj: Any) -> bool:
        # An observed model publishes from its model signals; publishing here too would
        # send each event twice when the request runs in autocommit.
        return not is_observed(type(self), type(obj))

    def perform_create(self, serializer: Any) -> None:
        window = self._live_window()
        with requested_by(window):
            super().perform_create(serializer)
        if self._publishes_itself(serializer.instance):
            publish(self, serializer.instance, CREATED, window_id=window)

    def perform_update(self, serializer: Any) -> None:
        window = self._live_window()
        before = self.get_live_partitions(serializer.instance)
        with requested_by(window):
            super().perform_update(serializer)
        if self._publishes_itself(serializer.instance):
            publish(self, serializer.instance, UPDATED, partitions_before=before, window_id=window)

    def perform_destroy(self, instance: Any) -> None:
        window = self._live_window()
        if self._publishes_itself(instance):
            publish(self, instance, DELETED, window_id=window)
        with requested_by(window):
            super().perform_destroy(instance)
