"""floorchannels.deadlines: every socket's hello deadline with one timer per loop."""

import asyncio

import pytest

from floorchannels.deadlines import hello_deadlines


async def wait_for_hello(timeout: float, hello: asyncio.Future) -> str:
    """What the consumer does: wait for a first frame, or be told it came too late."""
    deadlines = hello_deadlines()
    task = asyncio.current_task()
    deadlines.add(task, timeout)
    try:
        return await hello
    except asyncio.CancelledError:
        if not deadlines.expired(task) or task.uncancel():
            raise
        return "timeout"
    finally:
        deadlines.discard(task)


async def test_a_shorter_timeout_added_later_expires_first():
    loop = asyncio.get_running_loop()
    slow = asyncio.ensure_future(wait_for_hello(30, loop.create_future()))
    await asyncio.sleep(0)  # (a turn, so it starts waiting first)
    fast = asyncio.ensure_future(wait_for_hello(0.05, loop.create_future()))
    assert await asyncio.wait_for(fast, 5) == "timeout"
    assert not slow.done()
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert hello_deadlines().queues == {} and hello_deadlines().timer is None


async def test_a_hello_in_time_is_returned_and_leaves_nothing_behind():
    loop = asyncio.get_running_loop()
    hellos = [loop.create_future() for _ in range(3)]
    waiting = [asyncio.ensure_future(wait_for_hello(30, hello)) for hello in hellos]
    await asyncio.sleep(0)
    assert hello_deadlines().timer is not None
    for n, hello in enumerate(hellos):
        hello.set_result(f"hello {n}")
    assert await asyncio.gather(*waiting) == ["hello 0", "hello 1", "hello 2"]
    deadlines = hello_deadlines()
    assert (deadlines.queues, deadlines.cancelled, deadlines.timer) == ({}, set(), None)


async def test_a_cancellation_from_elsewhere_is_not_a_timeout():
    loop = asyncio.get_running_loop()
    waiting = asyncio.ensure_future(wait_for_hello(30, loop.create_future()))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_sockets_expire_in_order_and_the_timer_moves_on():
    loop = asyncio.get_running_loop()
    first = asyncio.ensure_future(wait_for_hello(0.05, loop.create_future()))
    await asyncio.sleep(0)
    later_hello = loop.create_future()
    later = asyncio.ensure_future(wait_for_hello(0.05, later_hello))
    await asyncio.sleep(0)
    assert await asyncio.wait_for(first, 5) == "timeout"
    assert await asyncio.wait_for(later, 5) == "timeout"
    assert hello_deadlines().queues == {}
