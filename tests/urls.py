from django.urls import include, path
from rest_framework.routers import DefaultRouter

from tests.testapp.views import NoteIdViewSet, NoteViewSet, StaffNoteViewSet

router = DefaultRouter()
router.register("notes", NoteViewSet, basename="note")
router.register("note-ids", NoteIdViewSet, basename="note-id")
router.register("staff-notes", StaffNoteViewSet, basename="staff-note")

urlpatterns = [path("api/", include(router.urls))]
