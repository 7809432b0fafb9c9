"""Non-waiting writes: a send that completes at once costs nothing more; one that waits is
finished later, with its result, its errors and its cancellation intact."""

import asyncio

import pytest

from floorchannels import sending


async def test_a_send_that_does_not_wait_is_done_at_once():
    written = []

    async def send(message):
        written.append(message)

    assert sending.start(send("frame")) is None
    assert written == ["frame"]


async def test_a_send_that_waits_is_finished_by_awaiting_its_rest():
    ready = asyncio.get_running_loop().create_future()
    steps = []

    async def send():
        steps.append("started")
        value = await ready
        steps.append(value)
        await asyncio.sleep(0)
        return "sent"

    rest = sending.start(send())
    assert rest is not None and steps == ["started"]
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    ready.set_result("drained")
    assert await task == "sent"
    assert steps == ["started", "drained"]


async def test_errors_and_cancellation_reach_the_waiting_send():
    cleaned = []

    async def send():
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(True)

    task = asyncio.ensure_future(sending.start(send()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]

    async def fails():
        await asyncio.sleep(0)
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        await sending.start(fails())


async def test_a_send_that_only_yields_a_loop_turn_is_finished_too():
    """asyncio.sleep(0) suspends by yielding None: that is still a suspension."""
    done = []

    async def send():
        await asyncio.sleep(0)
        done.append(True)

    rest = sending.start(send())
    assert rest is not None and done == []
    await rest
    assert done == [True]


async def test_a_send_that_returns_a_future_is_finished_too():
    """Some servers' send (granian's) returns a future rather than a coroutine."""
    future = asyncio.get_running_loop().create_future()
    rest = sending.start(future)
    assert rest is not None
    asyncio.get_running_loop().call_soon(future.set_result, "written")
    assert await rest == "written"
