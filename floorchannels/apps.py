from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class FloorchannelsConfig(AppConfig):
    name = "floorchannels"
    verbose_name = "floorchannels"

    def ready(self) -> None:
        from django.apps import apps
        from django.core.signals import setting_changed

        from . import checks, messages, presence  # noqa: F401 - system checks; presence's browser signal
        from .conf import fc_settings
        from .hub import register_handler
        from .joins import on_topic_message
        from .layers import watch_channels_redis
        from .revocation import connect_signals, on_replaced, on_replaced_many, on_revoke

        setting_changed.connect(fc_settings.forget, dispatch_uid="floorchannels.conf")
        connect_signals()
        watch_channels_redis()
        register_handler(messages.REVOKE, on_revoke)
        register_handler(messages.REPLACE, on_replaced)
        register_handler(messages.REPLACE_MANY, on_replaced_many)
        register_handler(messages.TOPIC, on_topic_message)
        if apps.is_installed("rest_framework"):
            from .rest.delivery import on_message

            register_handler(messages.RESOURCE, on_message)

        # Import <app>.signals everywhere so web and worker processes know the same signals.
        if fc_settings.AUTODISCOVER:
            autodiscover_modules(fc_settings.AUTODISCOVER)
