"""Background tasks: a crash is never silent, and what must run keeps running."""

import asyncio

from floorchannels import metrics, tasks


async def test_a_crashed_task_is_logged_with_its_traceback(caplog):
    async def crash():
        raise RuntimeError("lost work")

    task = tasks.spawn(crash(), "a test job")
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)  # done callbacks run on the next loop turn
    record = next(r for r in caplog.records if r.name == "floorchannels.tasks")
    assert "a test job" in record.getMessage() and record.exc_info[0] is RuntimeError
    assert metrics.snapshot()["task_crashes"] == 1
    assert task not in tasks._running


async def test_a_supervised_task_is_restarted_after_a_crash(monkeypatch, caplog):
    monkeypatch.setattr(tasks, "RESTART_MIN", 0.001)
    runs = []
    done = asyncio.Event()

    async def flaky():
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("transient")
        done.set()
        await asyncio.Event().wait()  # then runs for good

    task = tasks.supervise(flaky, "a flaky loop")
    await asyncio.wait_for(done.wait(), 5)
    assert len(runs) == 3
    assert metrics.snapshot()["task_restarts"] == 2
    assert sum("a flaky loop crashed" in r.getMessage() for r in caplog.records) == 2
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
