"""The key view, the notes API (live resource ``notes``, DRF tokens) and a page Django
renders for a signed-in session."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from tests.testapp.views import NoteViewSet

from .views import page, session_login

router = DefaultRouter()
router.register("notes", NoteViewSet, basename="note")

urlpatterns = [
    path("floorchannels/", include("floorchannels.urls")),
    path("api/", include(router.urls)),
    path("login/", session_login),
    path("page/", page),
]
