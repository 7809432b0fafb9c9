"""Bulk changes to a live resource: one bulk_update of N objects, M subscribed windows.

    python -m bench.bulk_live [--objects 1000] [--windows 100]

Runs in one process on the tests' project (tests.testapp's tasks, in-memory layer, SQLite):
M users, each with one window subscribed to the "tasks" list, all members of one project of
N tasks, each task assigned to one user. A "management command" then marks every task done
with ``bulk_update`` and ``publish_many``. Prints the time until every window has its N
events, the database queries that took (publishing and delivery), and checks each window's
per-user data (``mine``: the task is assigned to that window's user). Last line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


class QueryCounter:
    """Counts queries on every connection, in every thread (delivery runs in threads)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, execute, sql, params, many, context):
        with self.lock:
            self.count += 1
        return execute(sql, params, many, context)


async def main(objects: int, windows: int) -> dict:
    from asgiref.sync import sync_to_async
    from django.contrib.auth.models import User
    from django.db import connection
    from django.db.backends.signals import connection_created

    from floorchannels.rest import publish_many
    from tests.conftest import make_key, open_window, session_headers
    from tests.testapp.models import Project, Task

    def setup():
        project = Project.objects.create(name="bulk")
        users = [User.objects.create_user(f"user{i}", password="x") for i in range(windows)]
        project.members.add(*users)
        tasks = Task.objects.bulk_create(Task(project=project, title=f"task {i}") for i in range(objects))
        through = Task.assignees.through
        through.objects.bulk_create(
            through(task_id=t.pk, user_id=users[i % windows].pk) for i, t in enumerate(tasks)
        )
        return users, [t.pk for t in tasks], [session_headers(u) for u in users]

    users, pks, cookies = await sync_to_async(setup)()
    counter = QueryCounter()
    connection.execute_wrappers.append(counter)
    connection_created.connect(
        lambda connection, **kw: connection.execute_wrappers.append(counter), weak=False
    )
    opened = []
    for user, cookie in zip(users, cookies, strict=True):
        window = await open_window(make_key(user), cookie)
        await window.ws.send_json_to({"type": "subscribe", "id": "s", "resource": "tasks"})
        reply = await window.ws.receive_json_from(timeout=30)
        assert reply.get("ok"), reply
        opened.append(window)

    subscribing = counter.count

    def bulk_update():
        tasks = list(Task.objects.filter(pk__in=pks))
        for task in tasks:
            task.done = True
        Task.objects.bulk_update(tasks, ["done"])
        publish_many(tasks)

    started = time.perf_counter()
    publish_task = asyncio.ensure_future(sync_to_async(bulk_update, thread_sensitive=False)())

    async def drain(window, user_index):
        got, wrong = 0, 0
        while got < objects:
            frame = await window.ws.receive_json_from(timeout=120)
            if frame.get("type") != "event":
                continue
            got += 1
            task_index = pks.index(int(frame["pk"]))
            if frame["data"]["mine"] != (task_index % windows == user_index) or not frame["data"]["done"]:
                wrong += 1
        return wrong

    wrong = await asyncio.gather(*(drain(w, i) for i, w in enumerate(opened)))
    elapsed = time.perf_counter() - started
    await publish_task
    for window in opened:
        await window.close()
    return {
        "objects": objects,
        "windows": windows,
        "events": objects * windows,
        "seconds": round(elapsed, 2),
        "events_per_second": round(objects * windows / elapsed),
        "queries": counter.count - subscribing,
        "wrong_data": sum(wrong),
    }


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=100)
    args = parser.parse_args()
    import django
    from django.test.utils import setup_test_environment

    django.setup()
    setup_test_environment()
    from django.db import connection

    connection.creation.create_test_db(verbosity=0)
    try:
        result = asyncio.run(main(args.objects, args.windows))
    finally:
        connection.creation.destroy_test_db(":memory:", verbosity=0)
    print(
        f"bulk_update of {result['objects']} tasks to {result['windows']} windows: "
        f"{result['seconds']} s, {result['events_per_second']} events/s, {result['queries']} queries, "
        f"{result['wrong_data']} events with wrong per-user data",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    run()
