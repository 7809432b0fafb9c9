"""The layer message schema: what a process accepts from the channel layer."""

import pytest

from floorchannels import messages


def test_the_messages_this_release_builds_pass_its_own_check():
    assert (
        messages.check(messages.DELIVER.build(id="m", group="g", frame="{}", multi=False)) is messages.DELIVER
    )
    assert messages.check(messages.PROBE.build(token="t")) is messages.PROBE
    assert messages.check(messages.REVOKE.build(group="g", session=None, reason="r")) is messages.REVOKE


def test_a_message_without_a_version_is_read_as_version_1():
    """Processes of the release before versioning still talk to this one."""
    assert messages.check({"type": "fc.probe", "token": "t"}) is messages.PROBE


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"type": "fc.deliver", "id": "m", "group": "g"}, "'frame' missing"),
        ({"type": "fc.deliver", "id": "m", "group": "g", "frame": 3}, "'frame' missing or not str"),
        ({"type": "fc.deliver", "id": "m", "group": "g", "frame": "{}", "eta": "soon"}, "'eta' is not"),
        ({"type": "fc.deliver", "id": "m", "group": "g", "frame": "{}", "multi": 1}, "'multi' is not bool"),
        ({"type": "fc.probe", "token": True}, "'token'"),
        ({"type": "fc.probe", "v": 2, "token": "t"}, "schema version 2"),
        ({"type": "fc.unknown"}, "unknown type"),
        ({"type": None}, "unknown type"),
        (["not", "a", "dict"], "not a dict"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(message, reason):
    with pytest.raises(messages.InvalidMessage) as refused:
        messages.check(message)
    assert reason in str(refused.value)


def test_a_skipped_kind_is_logged_once_and_counted_every_time(caplog):
    from floorchannels import metrics

    error = messages.InvalidMessage("fc.test_kind", "unknown type")
    for _ in range(5):
        messages.skip(error, "a test")
    lines = [r for r in caplog.records if "fc.test_kind" in r.getMessage()]
    assert len(lines) == 1
    assert metrics.snapshot()["layer_messages_invalid"] == 5
