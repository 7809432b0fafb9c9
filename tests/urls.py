from django.urls import include, path
from rest_framework.routers import DefaultRouter

from tests.testapp.views import (
    DocumentViewSet,
    NoteIdViewSet,
    NoteViewSet,
    ProjectTaskViewSet,
    StaffNoteViewSet,
    TaskViewSet,
)

router = DefaultRouter()
router.register("notes", NoteViewSet, basename="note")
router.register("note-ids", NoteIdViewSet, basename="note-id")
router.register("staff-notes", StaffNoteViewSet, basename="staff-note")
router.register("tasks", TaskViewSet, basename="task")
router.register("documents", DocumentViewSet, basename="document")
nested = DefaultRouter()
nested.register("tasks", ProjectTaskViewSet, basename="project-task")

urlpatterns = [
    path("api/", include(router.urls)),
    path("api/projects/<int:project_pk>/", include(nested.urls)),
]
