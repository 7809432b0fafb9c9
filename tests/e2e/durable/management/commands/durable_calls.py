"""``manage.py durable_calls FIRST COUNT [--countdown S] [--hold]``: queue ``qt.count`` calls
numbered FIRST to FIRST+COUNT-1 from a process of its own, which then exits."""

from django.core.management.base import BaseCommand

from floorchannels import SERVER, call


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("first", type=int)
        parser.add_argument("count", type=int)
        parser.add_argument("--countdown", type=float, default=None)
        parser.add_argument("--hold", action="store_true")

    def handle(self, first, count, countdown, hold, **options):
        for n in range(first, first + count):
            call("qt.count", SERVER, kwargs={"n": n, "hold": hold}, countdown=countdown)
        self.stdout.write(f"queued {count}")
