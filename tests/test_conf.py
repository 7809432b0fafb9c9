"""floorchannels.conf: settings merged over the defaults, remembered until they change."""

import pytest
from django.test import override_settings

from floorchannels.conf import DEFAULTS, fc_settings


def test_a_setting_changed_after_it_was_read_is_read_again(settings):
    settings.FLOORCHANNELS = {"HEARTBEAT": 7.0}
    assert fc_settings.HEARTBEAT == 7.0
    settings.FLOORCHANNELS = {"HEARTBEAT": 9.0}
    assert fc_settings.HEARTBEAT == 9.0
    with override_settings(FLOORCHANNELS={}):
        assert fc_settings.HEARTBEAT == DEFAULTS["HEARTBEAT"]
    assert fc_settings.HEARTBEAT == 9.0


def test_another_settings_change_keeps_what_was_read(settings):
    settings.FLOORCHANNELS = {"HEARTBEAT": 7.0}
    assert fc_settings.HEARTBEAT == 7.0
    settings.USE_TZ = not settings.USE_TZ
    assert "HEARTBEAT" in vars(fc_settings)


def test_an_unknown_setting_is_an_attribute_error():
    with pytest.raises(AttributeError, match="Unknown floorchannels setting 'HEARTBEET'"):
        fc_settings.HEARTBEET  # noqa: B018
