from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "sampleproject.demo"
    label = "demo"

    def ready(self) -> None:
        from floorchannels.rest import observe

        from .api import NoteViewSet

        # A note saved anywhere (the admin, the shell, a command) reaches the live lists.
        observe(NoteViewSet, model=self.get_model("Note"))
