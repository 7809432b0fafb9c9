from django.test import override_settings

from floorchannels.checks import check_channel_layer, check_routing


def ids(errors):
    return [e.id for e in errors]


def test_configured_project_passes():
    assert check_channel_layer() == [] and check_routing() == []


def test_missing_channel_layer():
    with override_settings(CHANNEL_LAYERS={}):
        assert ids(check_channel_layer()) == ["floorchannels.E001"]


def test_layer_without_groups():
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "tests.test_checks.NoGroups"}}):
        assert ids(check_channel_layer()) == ["floorchannels.E003"]


class NoGroups:
    async def send(self, channel, message):
        pass


def test_missing_routing():
    with override_settings(ASGI_APPLICATION=None):
        assert ids(check_routing()) == ["floorchannels.E004"]
    with override_settings(ASGI_APPLICATION="tests.test_checks.bare_app"):
        assert ids(check_routing()) == ["floorchannels.W001"]


async def bare_app(scope, receive, send):
    pass


def test_queues_without_the_channels_app_warn():
    from floorchannels.checks import check_worker_command

    assert check_worker_command() == []
    apps_without_channels = [
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "floorchannels",
        "tests.testapp",
    ]
    with override_settings(INSTALLED_APPS=apps_without_channels):
        assert ids(check_worker_command()) == ["floorchannels.W002"]


def test_small_capacity_warns():
    from floorchannels.checks import check_capacity

    assert check_capacity() == []  # the test settings use 10,000
    small = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=small):
        assert ids(check_capacity()) == ["floorchannels.W003"]
    sized = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"channel_capacity": {"floorchannels-hub*": 100000}},
        }
    }
    with override_settings(CHANNEL_LAYERS=sized):
        assert check_capacity() == []
