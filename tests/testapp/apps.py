from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"

    def ready(self) -> None:
        from floorchannels.rest import observe

        from .views import DocumentViewSet, ProjectTaskViewSet, TaskViewSet

        # Saves and deletes from anywhere publish these resources (not only the viewsets).
        observe(TaskViewSet)
        observe(ProjectTaskViewSet)
        observe(DocumentViewSet)
