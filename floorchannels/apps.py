from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class FloorchannelsConfig(AppConfig):
    name = "floorchannels"
    verbose_name = "floorchannels"

    def ready(self) -> None:
        from . import checks, presence  # noqa: F401 - system checks; presence's browser signal
        from .conf import fc_settings
        from .layers import watch_channels_redis
        from .revocation import connect_signals

        connect_signals()
        watch_channels_redis()

        # Import <app>.signals everywhere so web and worker processes know the same signals.
        if fc_settings.AUTODISCOVER:
            autodiscover_modules(fc_settings.AUTODISCOVER)
