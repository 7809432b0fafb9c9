"""Topics joined and left at runtime, as a window sees them (in-process consumers).

Permissions come from ``FLOORCHANNELS["TOPICS"]``: ``"project.{name}"`` may be joined by
the members of the project of that name (a database query, as a real permission would).
"""

import asyncio
import logging
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from floorchannels import acall, metrics, presence, window_key
from floorchannels.history import alias, get_history
from floorchannels.hub import get_hub
from floorchannels.joins import MAX_TOPIC_LENGTH, agrant_topic, arevoke_topic, compile_pattern, grant_topic
from floorchannels.topics import group_for_topic
from floorchannels.windows import load_key
from tests.conftest import (
    Window,
    await_until,
    connect_raw,
    frames_before_marker,
    make_key,
    nothing_before_marker,
    session_headers,
)
from tests.test_consumers import deliver_message
from tests.test_presence import diffs
from tests.testapp.models import Project

pytestmark = pytest.mark.django_db(transaction=True)


def may_join_project(window, name):
    user = window.user
    return user.is_authenticated and Project.objects.filter(name=name, members=user).exists()


async def may_join_lobby(window, name):
    return name == "open"


def broken_permission(window, name):
    raise RuntimeError("the permission itself failed")


@pytest.fixture(autouse=True)
def declared_topics(settings):
    settings.FLOORCHANNELS = {
        **settings.FLOORCHANNELS,
        "TOPICS": {
            "project.{name}": "tests.test_joins.may_join_project",
            "lobby.{name}": may_join_lobby,
            "broken.{name}": broken_permission,
        },
    }


@pytest.fixture
def alice(db):
    user = User.objects.create_user("alice", password="x")
    Project.objects.create(name="apollo").members.add(user)
    Project.objects.create(name="zeus")  # alice is not a member
    return user


async def hello(key, headers=None, **fields):
    ws = await connect_raw(headers)
    await ws.send_json_to({"type": "hello", "window_key": key, "protocol": 1, **fields})
    welcome = await ws.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome", welcome
    return Window(ws, welcome)


async def window_of(user, **grants):
    headers = await sync_to_async(session_headers)(user)
    key = await sync_to_async(window_key)(SimpleNamespace(user=user), **grants)
    window = await hello(key, headers)
    window.headers = headers
    window.key = key
    return window


async def request(window, kind, **fields):
    """Send a join or leave; return (reply, the refresh that followed it, if any)."""
    window._ids += 1
    await window.ws.send_json_to({"type": kind, "id": window._ids, **fields})
    reply = await window.receive(timeout=5)
    assert reply["type"] == "reply" and reply["id"] == window._ids, reply
    refresh = None
    if reply["ok"] and (kind == "join" or reply["result"]["topic"] in joined_topics(window)):
        refresh = await window.receive(timeout=5)
        assert refresh["type"] == "refresh", refresh
        window.key = refresh["window_key"]
    return reply, refresh


def joined_topics(window):
    return {topic.strip('"') for topic in load_key(window.key).topics}


async def published(topic, n):
    await acall("room.message", topic, kwargs={"n": n})


async def test_a_member_joins_and_receives_its_messages(alice):
    window = await window_of(alice)
    reply, refresh = await request(window, "join", topic="project.apollo")
    result = reply["result"]
    assert result["topic"] == "project.apollo"
    assert result["g"] == alias(group_for_topic("project.apollo"))
    assert result["presence"] is False
    assert result["seq"] == "0-0" and result["e"] == window.welcome["e"]
    # The fresh key lists the topic: a reconnect comes back in it.
    assert '"project.apollo"' in load_key(refresh["window_key"]).topics

    await published("project.apollo", 1)
    frame = await window.receive()
    assert (frame["signal"], frame["kwargs"], frame["g"]) == ("room.message", {"n": 1}, result["g"])
    # Joining again is harmless: answered with the same topic, nothing is doubled.
    again, _ = await request(window, "join", topic="project.apollo")
    assert again["ok"] and again["result"]["g"] == result["g"]
    await published("project.apollo", 2)
    [frames] = await frames_before_marker(window)
    assert [f["kwargs"] for f in frames] == [{"n": 2}]
    assert metrics.snapshot()["join_ok"] == 2
    await window.close()


async def test_a_window_cannot_join_what_its_user_may_not_see(alice):
    window = await window_of(alice)
    reply, _ = await request(window, "join", topic="project.zeus")
    assert reply["error"]["code"] == "forbidden"
    assert "project.zeus" in reply["error"]["message"]
    anonymous = await hello(make_key())
    refused, _ = await request(anonymous, "join", topic="project.apollo")
    assert refused["error"]["code"] == "forbidden"
    await published("project.zeus", 1)
    await published("project.apollo", 1)
    await nothing_before_marker(window, anonymous)
    assert metrics.snapshot()["join_forbidden"] == 2
    await window.close()
    await anonymous.close()


async def test_a_topic_no_pattern_declares_is_forbidden(alice):
    window = await window_of(alice)
    for topic in ("apollo", "project.apollo.extra", "projectXapollo", "project."):
        reply, _ = await request(window, "join", topic=topic)
        assert reply["error"]["code"] == "forbidden", topic
        assert reply["error"]["message"].startswith("No topic pattern matches"), topic
    await window.close()


async def test_async_permissions_and_failing_ones(alice, caplog):
    window = await window_of(alice)
    allowed, _ = await request(window, "join", topic="lobby.open")
    assert allowed["ok"]
    refused, _ = await request(window, "join", topic="lobby.closed")
    assert refused["error"]["code"] == "forbidden"
    with caplog.at_level(logging.ERROR, "floorchannels.joins"):
        failed, _ = await request(window, "join", topic="broken.x")
    assert failed["error"] == {"code": "server_error", "message": "The join failed on the server."}
    assert "the permission itself failed" in caplog.text
    # The socket goes on.
    await published("lobby.open", 1)
    assert (await window.receive())["kwargs"] == {"n": 1}
    await window.close()


async def test_bad_frames_are_answered_invalid_frame(alice):
    window = await window_of(alice)
    for fields in (
        {},
        {"topic": 7},
        {"topic": ""},
        {"topic": "lobby." + "x" * MAX_TOPIC_LENGTH},
        {"topic": "lobby.open", "presence": "yes"},
    ):
        reply, _ = await request(window, "join", **fields)
        assert reply["error"]["code"] == "invalid_frame", fields
    reply, _ = await request(window, "leave", topic=["lobby.open"])
    assert reply["error"]["code"] == "invalid_frame"
    await window.ws.send_json_to({"type": "join", "topic": "lobby.open"})  # no id
    error = await window.receive()
    assert error == {
        "type": "error",
        "code": "invalid_frame",
        "message": "A join needs an 'id' (string or integer).",
    }
    await window.close()


async def test_a_window_joins_a_bounded_number_of_topics(alice, settings):
    settings.FLOORCHANNELS = {**settings.FLOORCHANNELS, "MAX_TOPICS": 3}
    window = await window_of(alice, topics=["granted"])
    assert (await request(window, "join", topic="lobby.open"))[0]["ok"]
    assert (await request(window, "join", topic="project.apollo"))[0]["ok"]
    reply, _ = await request(window, "join", topic="lobby.open2")
    assert reply["error"]["code"] == "too_many_topics"
    assert "MAX_TOPICS" in reply["error"]["message"]
    # Leaving one makes room.
    assert (await request(window, "leave", topic="lobby.open"))[0]["ok"]
    assert (await request(window, "join", topic="lobby.open"))[0]["ok"]
    await window.close()


async def test_leave_stops_delivery_at_once(alice):
    window = await window_of(alice)
    joined, _ = await request(window, "join", topic="project.apollo")
    await published("project.apollo", 1)
    assert (await window.receive())["kwargs"] == {"n": 1}
    left, refresh = await request(window, "leave", topic="project.apollo")
    assert left["result"] == {"topic": "project.apollo", "g": joined["result"]["g"], "presence": False}
    assert '"project.apollo"' not in load_key(refresh["window_key"]).topics
    await published("project.apollo", 2)
    await nothing_before_marker(window)
    # Leaving a topic the window is not in is answered the same way, with no new key.
    again, none = await request(window, "leave", topic="project.apollo")
    assert again["ok"] and none is None
    # A topic granted by the key can be left too.
    keyed = await window_of(alice, topics=["news"])
    assert (await request(keyed, "leave", topic="news"))[0]["ok"]
    await acall("news.flash", "news")
    await nothing_before_marker(keyed)
    await window.close()
    await keyed.close()


async def test_python_grants_and_revokes_topics_of_an_open_window(alice):
    window = await window_of(alice)
    info = load_key(window.key)
    # Python is trusted: no pattern is needed, and any topic (a tuple too) can be granted.
    await agrant_topic(info, ("room", 7))
    told = await window.receive()
    assert told["type"] == "topic" and told["action"] == "joined"
    assert told["topic"] == ["room", 7] and told["g"] == alias(group_for_topic(("room", 7)))
    refresh = await window.receive()
    assert refresh["type"] == "refresh" and '["room",7]' in load_key(refresh["window_key"]).topics
    await acall("room.message", ("room", 7), kwargs={"n": 1})
    assert (await window.receive())["kwargs"] == {"n": 1}

    # The synchronous twin, from a thread (a view, a signal receiver), by window id.
    await sync_to_async(grant_topic)(window.welcome["window_id"], "announcements")
    assert (await window.receive())["topic"] == "announcements"
    assert (await window.receive())["type"] == "refresh"

    await arevoke_topic(window.welcome["window_id"], ("room", 7))
    told = await window.receive()
    assert (told["type"], told["action"], told["topic"]) == ("topic", "left", ["room", 7])
    refresh = await window.receive()
    assert '["room",7]' not in load_key(refresh["window_key"]).topics
    await acall("room.message", ("room", 7), kwargs={"n": 2})
    await nothing_before_marker(window)
    await window.close()


async def test_grants_need_a_browser_window():
    from floorchannels.windows import WindowInfo

    with pytest.raises(ValueError, match="browser window"):
        await agrant_topic(WindowInfo(), "x")


async def test_a_reconnect_is_back_in_its_joined_topics_and_resumes_them(alice):
    window = await window_of(alice)
    joined, _ = await request(window, "join", topic="project.apollo")
    position = joined["result"]
    await window.close()
    for n in range(1, 4):  # published while the window is away, before any reached it
        await published("project.apollo", n)

    resume = {"e": position["e"], "seqs": {position["g"]: position["seq"]}}
    back = await hello(window.key, window.headers, resume=resume)
    assert {"topic": "project.apollo", "g": position["g"], "presence": False} in back.welcome["topics"]
    await published("project.apollo", 4)
    [frames] = await frames_before_marker(back)
    assert [f["kwargs"]["n"] for f in frames if f["type"] == "signal"] == [1, 2, 3, 4]
    await back.close()


async def test_a_new_key_presents_its_joined_topics_in_hello_and_each_is_checked_again(alice):
    window = await window_of(alice)
    joined, _ = await request(window, "join", topic="project.apollo")
    position = joined["result"]
    await window.close()
    await published("project.apollo", 1)

    # A key fetched anew (getWindowKey after 4410) does not list them: hello asks again.
    fresh = await sync_to_async(window_key)(SimpleNamespace(user=alice))
    resume = {"e": position["e"], "seqs": {position["g"]: position["seq"]}}
    topics = ["project.apollo", {"topic": "project.zeus"}, {"topic": "nowhere"}, 42]
    back = await hello(fresh, window.headers, resume=resume, topics=topics)
    assert [t["topic"] for t in back.welcome["topics"]] == ["project.apollo"]
    refresh = await back.receive()
    assert refresh["type"] == "refresh"
    assert load_key(refresh["window_key"]).topics == ('"project.apollo"',)
    replayed = await back.receive()
    assert replayed["kwargs"] == {"n": 1}  # the resume covered the topic joined again
    await published("project.zeus", 1)
    await nothing_before_marker(back)
    await back.close()

    # Once alice is no longer a member, asking again in a hello gets nothing.
    await sync_to_async(lambda: Project.objects.get(name="apollo").members.clear())()
    again = await hello(fresh, window.headers, topics=["project.apollo"])
    assert "topics" not in again.welcome
    await published("project.apollo", 2)
    await nothing_before_marker(again)
    await again.close()


async def test_joined_with_presence_the_window_is_listed_until_it_leaves(alice):
    watcher = await window_of(alice, topics=["lobby.open"])
    window = await window_of(alice)
    me = window.welcome["window_id"]
    joined, _ = await request(window, "join", topic="lobby.open", presence=True)
    assert joined["result"]["presence"] is True
    [diff] = await diffs(watcher, 1)
    assert [entry["window"] for entry in diff["joined"]] == [me]
    topic = '"lobby.open"'
    listing = (await watcher.call("fc.presence.list", topic=topic))["result"]
    assert listing["users"] == [{"user": str(alice.pk), "name": "alice", "windows": [me]}]
    # The joining window may ask too: a joined topic is one of its topics.
    assert (await window.call("fc.presence.list", topic=topic, count_only=True))["result"]["count"] == 1

    await request(window, "leave", topic="lobby.open")
    [diff] = await diffs(watcher, 1)
    assert [entry["window"] for entry in diff["left"]] == [me]
    assert (await watcher.call("fc.presence.list", topic=topic))["result"]["count"] == 0
    await window.close()
    await watcher.close()


async def _absent(topic):
    return await presence.acount(topic) == 0


async def test_the_refreshed_key_carries_presence_across_a_reconnect(alice):
    window = await window_of(alice)
    await request(window, "join", topic="lobby.open", presence=True)
    await window.close()
    await await_until(lambda: _absent("lobby.open"), what="the closed window to leave")
    back = await hello(window.key, window.headers)
    assert back.welcome["topics"][0]["presence"] is True
    await await_until(lambda: presence.acount("lobby.open"), what="the window to be listed again")
    await back.close()


def test_patterns():
    assert compile_pattern("room.{name}").fullmatch("room.lobby").groupdict() == {"name": "lobby"}
    assert compile_pattern("room.{name}").fullmatch("room.a.b") is None
    assert compile_pattern("a+b.{x}.{y}").fullmatch("a+b.1.2").groupdict() == {"x": "1", "y": "2"}
    assert compile_pattern("plain").fullmatch("plain")
    from django.core.exceptions import ImproperlyConfigured

    for bad in ("room.{name}.{name}", "room.{1x}", "room.{name"):
        with pytest.raises(ImproperlyConfigured):
            compile_pattern(bad)


async def test_a_join_amid_a_stream_is_answered_first_then_every_later_message_follows(alice, monkeypatch):
    """The reply gives the topic's position and comes before any of its signals; every
    message published after that position reaches the window: no gap for the client's
    recovery to chase."""
    window = await window_of(alice)
    await published("lobby.open", 0)  # the group has a history
    # Reading the position takes a few loop turns, as a Redis round trip does: messages
    # of the stream reach the hub meanwhile.
    store = get_history()
    read_positions = store.positions

    async def slow_positions(groups):
        for _ in range(50):
            await asyncio.sleep(0)
        return await read_positions(groups)

    monkeypatch.setattr(store, "positions", slow_positions)

    stop = asyncio.Event()

    async def stream():
        n = 0
        while not stop.is_set():
            n += 1
            await published("lobby.open", n)
            await asyncio.sleep(0)
        return n

    publisher = asyncio.ensure_future(stream())
    window._ids += 1
    await window.ws.send_json_to({"type": "join", "id": window._ids, "topic": "lobby.open"})
    reply = await window.receive()
    stop.set()
    last = await publisher
    assert reply["type"] == "reply" and reply["ok"], reply
    position = int(reply["result"]["seq"].split("-")[0])
    assert (await window.receive())["type"] == "refresh"
    [frames] = await frames_before_marker(window)
    seqs = [int(f["seq"].split("-")[0]) for f in frames]
    # Everything after the position, once and in order; a message appended to the history
    # just before the position was read but sent just after the join may come too (as at a
    # welcome): the window is in the topic by then.
    assert seqs == sorted(set(seqs)) and seqs[-1] == last + 1, (position, last, seqs)
    assert set(range(position + 1, last + 2)) <= set(seqs), (position, last, seqs)
    await window.close()


async def test_a_hub_that_is_behind_writes_nothing_older_than_a_joined_topics_position(alice):
    """As after a welcome: messages of a topic published before the join's reply, still on
    their way through a busy hub, are not written after it."""
    window = await window_of(alice)
    for n in range(3):
        await published("lobby.open", n)
    reply, _ = await request(window, "join", topic="lobby.open")
    assert reply["result"]["seq"] == "3-0"
    group, epoch = group_for_topic("lobby.open"), reply["result"]["e"]
    late = [deliver_message("room.message", {"n": n}, n + 1, epoch, group) for n in range(3)]
    await (await get_hub()).deliver_many([*late, deliver_message("room.message", {"n": 3}, 4, epoch, group)])
    frame = await window.receive()
    assert (frame["kwargs"], frame["seq"]) == ({"n": 3}, "4-0")
    await window.close()


async def test_grants_with_presence_and_past_the_limit(alice, settings, caplog):
    settings.FLOORCHANNELS = {**settings.FLOORCHANNELS, "MAX_TOPICS": 1}
    window = await window_of(alice)
    await agrant_topic(window.welcome["window_id"], "stage", presence=True)
    told = await window.receive()
    assert (told["action"], told["topic"], told["presence"]) == ("joined", "stage", True)
    await window.receive()  # its refresh
    await await_until(lambda: presence.acount("stage"), what="the granted window to be listed")
    with caplog.at_level(logging.WARNING, "floorchannels.joins"):
        await agrant_topic(window.welcome["window_id"], "backstage")
        await await_until(lambda: metrics.snapshot().get("grant_refused"), what="the refused grant")
    assert "MAX_TOPICS" in caplog.text
    await acall("room.message", "backstage", kwargs={"n": 1})
    await nothing_before_marker(window)
    await window.close()


async def test_a_topic_message_of_another_shape_is_skipped_and_counted(alice):
    from floorchannels import messages
    from floorchannels.layers import channel_layer, group_send
    from floorchannels.topics import window_group

    window = await window_of(alice)
    group = window_group(window.welcome["window_id"])
    bad = messages.TOPIC.build(group=group, action="promote", topic='"x"')
    await group_send(channel_layer(), group, bad)
    await await_until(lambda: metrics.snapshot().get("layer_messages_invalid"), what="the skipped message")
    await nothing_before_marker(window)  # the window goes on, in no new topic
    await window.close()


async def test_a_topic_of_the_key_is_joined_without_a_check_and_may_add_presence(alice):
    window = await window_of(alice, topics=["project.zeus"])  # the view granted it
    reply, _ = await request(window, "join", topic="project.zeus", presence=True)
    assert reply["ok"] and reply["result"]["presence"] is True
    await await_until(lambda: presence.acount("project.zeus"), what="the window to be listed")
    await window.close()


async def test_a_misdeclared_pattern_is_a_logged_server_error(alice, settings, caplog):
    settings.FLOORCHANNELS = {**settings.FLOORCHANNELS, "TOPICS": {"room.{name}": "no.such.permission"}}
    window = await window_of(alice)
    with caplog.at_level(logging.ERROR, "floorchannels.joins"):
        reply, _ = await request(window, "join", topic="room.lobby")
    assert reply["error"]["code"] == "server_error"
    assert "cannot be imported" in caplog.text
    await window.close()
