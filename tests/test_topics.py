import re
import subprocess
import sys

import pytest
from django.contrib.auth.models import Group

from floorchannels.topics import (
    BROADCAST_GROUP,
    group_for_topic,
    layer_group,
    serialize_topic,
    user_group,
    window_group,
)

VALID = re.compile(r"^[a-zA-Z0-9\-_.]{1,99}$")


@pytest.mark.parametrize(
    "topic",
    ["chat", "", "x" * 5000, "日本語のトピック 🎉", 42, True, ("room", 7), ["a", ("b", 1)]],
)
def test_group_names_are_valid_channels_names(topic):
    assert VALID.match(group_for_topic(topic))


def test_distinct_topics_get_distinct_groups():
    topics = ["1", 1, True, ("1",), ["1", 1], "chat", "Chat"]
    assert len({group_for_topic(t) for t in topics}) == len(topics)


def test_model_instances_are_app_label_model_pk():
    group = Group(pk=5, name="x")
    assert serialize_topic(group) == '{"model":"auth.group","pk":"5"}'
    assert group_for_topic(group) == group_for_topic(Group(pk=5, name="renamed"))


def test_unsaved_instances_and_other_types_are_refused():
    with pytest.raises(ValueError):
        serialize_topic(Group(name="unsaved"))
    with pytest.raises(TypeError):
        serialize_topic(object())


def test_group_names_are_the_same_in_another_process():
    """hash() differs between processes; our names must not."""
    code = (
        "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='tests.settings';django.setup();"
        "from floorchannels.topics import group_for_topic,user_group;"
        "print(group_for_topic(('room', 7)), user_group(3))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [group_for_topic(("room", 7)), user_group(3)]


def test_window_and_user_groups():
    assert window_group("abc") == "fc.w.abc"
    assert VALID.match(user_group("a-very-long-string-pk-" * 10))
    assert user_group(3) == user_group("3")


def test_window_and_user_groups_share_a_bounded_set_of_layer_groups(settings):
    settings.FLOORCHANNELS = {"PRIVATE_GROUP_SHARDS": 16}
    carriers = {layer_group(window_group(f"w{n}")) for n in range(1000)}
    carriers |= {layer_group(user_group(n)) for n in range(1000)}
    assert len(carriers) == 16
    assert all(VALID.match(c) for c in carriers)
    # The same group always travels on the same layer group, in every process.
    assert layer_group(window_group("abc")) == layer_group(window_group("abc"))
    # Topics and BROADCAST keep a layer group of their own.
    assert layer_group(group_for_topic("room")) == group_for_topic("room")
    assert layer_group(BROADCAST_GROUP) == BROADCAST_GROUP


def test_private_group_shards_can_be_turned_off(settings):
    settings.FLOORCHANNELS = {"PRIVATE_GROUP_SHARDS": 0}
    assert layer_group(window_group("abc")) == window_group("abc")
