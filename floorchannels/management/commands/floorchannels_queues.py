"""``manage.py floorchannels_queues``: what each durable queue holds, and who serves it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from floorchannels import queues
from floorchannels.registry import registry


class Command(BaseCommand):
    help = (
        "Show each durable queue (Redis layers): calls waiting, running, delayed and dead, "
        "the age of the oldest, and the workers seen within QUEUE_WORKER_TIMEOUT."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("queue", nargs="*", help="queues to show (default: every registered queue)")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
        parser.add_argument(
            "--retry-dead",
            action="store_true",
            help="queue the dead letters of the queues named again (once their cause is fixed)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not queues.durable():
            raise CommandError(
                "Queues are not kept in Redis here: with the in-memory layer (or "
                "RUN_QUEUES_IN_PROCESS) the web process runs them as they come."
            )
        names = options["queue"] or sorted(registry.queues())
        if options["retry_dead"]:
            if not options["queue"]:
                raise CommandError("Name the queues whose dead letters should run again.")
            for name, count in asyncio.run(_retry(names)):
                self.stdout.write(f"{name}: {count} dead letter(s) queued again")
            return
        rows = asyncio.run(_stats(names))
        for row in rows:
            if options["json"]:
                self.stdout.write(json.dumps(row))
            else:
                self.stdout.write(
                    "{queue}: {waiting} waiting, {running} running, {delayed} delayed, {dead} dead; "
                    "oldest {oldest_seconds:.1f} s; {workers} worker(s)".format(**row)
                )


async def _stats(names: list[str]) -> list[dict[str, Any]]:
    return [await queues.stats(name) for name in names]


async def _retry(names: list[str]) -> list[tuple[str, int]]:
    return [(name, await queues.retry_dead(name)) for name in names]
