from django.apps import AppConfig


class LiveDataConfig(AppConfig):
    name = "tests.e2e.livedata"
    label = "livedata"

    def ready(self) -> None:
        from floorchannels.rest import observe

        from .views import PagedTaskViewSet

        # Changes from the admin and from TaskViewSet's own writes reach the paged list too.
        observe(PagedTaskViewSet)
