"""``manage.py floorchannels_call``: send a signal from the command line (or a cron job)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from floorchannels import BROADCAST, SERVER, USER, call


class Command(BaseCommand):
    help = "Send a floorchannels signal to the server, a user, everyone or topics."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("signal", help="signal name, e.g. demo.message")
        parser.add_argument("--kwargs", default="{}", help="JSON object of keyword arguments")
        parser.add_argument("--broadcast", action="store_true", help="send to every window")
        parser.add_argument("--server", action="store_true", help="run the Python handlers")
        parser.add_argument("--user", action="append", default=[], help="a user's pk (repeatable)")
        parser.add_argument("--topic", action="append", default=[], help="a string topic (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            kwargs = json.loads(options["kwargs"])
        except ValueError as exc:
            raise CommandError(f"--kwargs is not JSON: {exc}") from None
        if not isinstance(kwargs, dict):
            raise CommandError("--kwargs must be a JSON object.")
        to: list[Any] = [USER(pk) for pk in options["user"]] + list(options["topic"])
        if options["broadcast"]:
            to.append(BROADCAST)
        if options["server"]:
            to.append(SERVER)
        if not to:
            raise CommandError("Say where to: --broadcast, --server, --user PK or --topic NAME.")
        message_id = call(options["signal"], to, kwargs=kwargs)
        self.stdout.write(f"sent {options['signal']} ({message_id})")
