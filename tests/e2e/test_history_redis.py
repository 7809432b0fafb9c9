"""The Redis history store against a real redis-server."""

import asyncio

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from floorchannels.history import RedisHistory

pytestmark = pytest.mark.e2e


async def eval_calls(client, command="eval") -> int:
    stats = await client.info("commandstats")
    return stats.get(f"cmdstat_{command}", {}).get("calls", 0)


async def test_scripts_run_by_digest_and_survive_a_script_flush(redis):
    """Appends send the script's digest, not its text; a Redis that lost its script cache
    (a restart, SCRIPT FLUSH) is sent the text once and the append still happens."""
    history = RedisHistory(redis.url)
    client = aioredis.Redis.from_url(redis.url)
    await history.append("digest-room", "id-0", '{"type":"signal"}')
    evals, evalshas = await eval_calls(client), await eval_calls(client, "evalsha")
    for n in range(1, 11):
        await history.append("digest-room", f"id-{n}", '{"type":"signal"}')
    assert await eval_calls(client) == evals
    assert await eval_calls(client, "evalsha") == evalshas + 10
    await client.script_flush()
    _epoch, seq = await history.append("digest-room", "id-11", '{"type":"signal"}')
    assert seq == 12
    assert await eval_calls(client) == evals + 1
    await client.aclose()


async def test_concurrent_position_reads_share_round_trips(redis):
    """A reconnect storm asks every group's position at once: each window gets its own
    answer, and Redis sees far fewer script calls than windows."""
    history = RedisHistory(redis.url)
    for n in range(5):
        for _ in range(n):
            await history.append(f"room-{n}", f"id-{n}", '{"type":"signal"}')
    client = aioredis.Redis.from_url(redis.url)
    before = await eval_calls(client, "evalsha")

    windows = [[f"room-{n % 5}", f"window-{n}"] for n in range(100)]
    answers = await asyncio.gather(*(history.positions(groups) for groups in windows))

    calls = await eval_calls(client, "evalsha") - before
    assert calls < 20, calls
    epochs = {epoch for epoch, _ in answers}
    assert len(epochs) == 1
    for n, (_epoch, positions) in enumerate(answers):
        assert positions == {f"room-{n % 5}": n % 5, f"window-{n}": 0}
    await client.aclose()


async def test_a_failed_read_reaches_every_waiting_window():
    """Redis unreachable: every waiting window gets the error, none is left hanging."""
    history = RedisHistory("redis://127.0.0.1:1/0")  # nothing listens there
    results = await asyncio.gather(*(history.positions([f"g{n}"]) for n in range(10)), return_exceptions=True)
    assert all(isinstance(r, redis.exceptions.ConnectionError) for r in results), results


async def test_a_replay_reaches_the_latest_message_or_is_a_resync(redis):
    """XADD MAXLEN ~ trims whole stream nodes, so the stream holds somewhat more than
    HISTORY_SIZE entries: a window behind by a little more than HISTORY_SIZE must get every
    message up to the latest, or a resync, never a replay that stops short."""
    history = RedisHistory(redis.url)
    group = "room-behind"
    for n in range(1150):
        epoch, counter = await history.append(group, f"id-{n}", '{"type":"signal"}')
    for behind in (1000, 1001, 1002, 1050):
        answer = await history.since(group, epoch, counter - behind)
        if isinstance(answer, str):
            continue  # a resync: the client is told
        seqs = [entry.seq for entry in answer]
        assert seqs == list(range(counter - behind + 1, counter + 1)), (behind, seqs[0], seqs[-1])
