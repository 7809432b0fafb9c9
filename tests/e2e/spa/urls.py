"""The key view and the notes API (live resource ``notes``), both authenticated by DRF tokens."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from tests.testapp.views import NoteViewSet

router = DefaultRouter()
router.register("notes", NoteViewSet, basename="note")

urlpatterns = [
    path("floorchannels/", include("floorchannels.urls")),
    path("api/", include(router.urls)),
]
