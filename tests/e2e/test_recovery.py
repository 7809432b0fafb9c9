"""No event lost across reconnects: a chaos run with real daphne (restarted) and Redis."""

import asyncio
import itertools
import json
import random
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async

from tests.conftest import await_until
from tests.e2e.conftest import ROOT, Browserless, Redis

pytestmark = pytest.mark.e2e

CLIENTS = 50
MESSAGES = 2000


def seq_number(seq):
    return int(seq.split("-")[0])


class ChaosClient:
    """What the JS client does for recovery: track seqs, resume, dedup by id, count resyncs."""

    def __init__(self, server, key):
        self.server, self.key = server, key
        self.epoch, self.seqs, self.ids = None, {}, set()
        self.numbers, self.resyncs, self.duplicates_dropped = [], [], 0
        self.at_most_once_loss = 0  # what a client without replay would have missed
        self.connection = None
        self.connects = 0
        self.stopped = False
        self.done = False  # saw the message published after the last tick
        self.attempt = 0
        self.came_on = []  # (connection attempt, seq) of each number, for failure reports
        self.trace = []  # (attempt, what happened), for failure reports

    def explain_order(self):
        """Where the numbers first go backwards (or repeat), with what the connections did."""
        for i in range(1, len(self.numbers)):
            if self.numbers[i] <= max(self.numbers[:i]):
                window = range(max(0, i - 4), min(len(self.numbers), i + 4))
                attempts = {self.came_on[j][0] for j in window}
                return (
                    f"number {self.numbers[i]} at index {i}; around it (number, (attempt, seq)): "
                    f"{[(self.numbers[j], self.came_on[j]) for j in window]}; "
                    f"those attempts: {[t for t in self.trace if t[0] in attempts or t[0] in {a - 1 for a in attempts}]}"
                )
        return "in order"

    async def run(self):
        from websockets.asyncio.client import connect

        while not self.stopped:
            try:
                self.attempt += 1
                self.connection = await connect(self.server.ws, open_timeout=5)
                hello = {"type": "hello", "window_key": self.key, "protocol": 1}
                if self.epoch and self.seqs:
                    hello["resume"] = {"e": self.epoch, "seqs": dict(self.seqs)}
                self.trace.append((self.attempt, "hello", hello.get("resume")))
                await self.connection.send(json.dumps(hello))
                async for text in self.connection:
                    self.handle(json.loads(text))
                self.trace.append((self.attempt, "closed", self.connection.close_code))
            except Exception as exc:
                self.trace.append((self.attempt, "failed", repr(exc)[:120]))
            if not self.stopped:  # a reconnect delay with jitter, as the JS client's backoff
                await asyncio.sleep(random.uniform(0.05, 0.4))

    def handle(self, frame):
        kind = frame["type"]
        if kind == "welcome":
            self.connects += 1
            self.trace.append((self.attempt, "welcome", frame.get("e"), frame.get("seqs")))
            if frame.get("e") != self.epoch:
                self.epoch, self.seqs = frame.get("e"), {}
            for alias, seq in (frame.get("seqs") or {}).items():
                if alias in self.seqs and seq_number(seq) > seq_number(self.seqs[alias]):
                    self.at_most_once_loss += seq_number(seq) - seq_number(self.seqs[alias])
                self.seqs.setdefault(alias, seq)
        elif kind == "signal":
            if frame.get("e") == self.epoch and frame.get("g"):
                if seq_number(frame["seq"]) > seq_number(self.seqs.get(frame["g"], "0-0")):
                    self.seqs[frame["g"]] = frame["seq"]
            if frame["id"] in self.ids:
                self.duplicates_dropped += 1
                return
            self.ids.add(frame["id"])
            if frame["signal"] == "load.tick":
                self.numbers.append(frame["kwargs"]["i"])
                self.came_on.append((self.attempt, frame.get("seq")))
            elif frame["signal"] == "load.done":
                self.done = True
        elif kind == "resync":
            self.resyncs.append(frame)
            self.trace.append((self.attempt, "resync", frame))
            if frame.get("g") and frame.get("seq"):
                self.seqs[frame["g"]] = frame["seq"]

    async def drop(self):
        if self.connection is not None:
            await self.connection.close()


async def test_chaos_every_message_once_in_order_or_an_explicit_resync(project_factory, capsys):
    redis = Redis()
    try:
        project = project_factory(redis.url)
        server = project.daphne()
        keys = [Browserless(server).page_key() for _ in range(CLIENTS)]
        clients = [ChaosClient(server, key) for key in keys]
        tasks = [asyncio.ensure_future(client.run()) for client in clients]
        await await_until(
            lambda: all(client.connects for client in clients), timeout=60, what="every client's welcome"
        )

        publisher = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.publisher", str(MESSAGES), "0.004"],
            cwd=ROOT,
            env=project.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        finished = asyncio.ensure_future(sync_to_async(publisher.communicate)(timeout=120))
        drops, restarted = 0, False
        started = asyncio.get_running_loop().time()
        while not finished.done():
            await asyncio.sleep(0.05)  # the chaos' pace: a dropped connection every 50 ms
            await random.choice(clients).drop()
            drops += 1
            if not restarted and asyncio.get_running_loop().time() - started > 3:
                restarted = True
                server.process.terminate()
                server.process.wait(15)
                server = project.daphne(port=server.port)  # the clients come back to it
        out, _ = await finished
        published = json.loads(out.strip().splitlines()[-1])
        assert not published["failed"]
        # Every client reconnects and catches up: a last broadcast, published after every tick
        # in the same group, reaches each client after the ticks it replays or receives.
        await sync_to_async(project.manage)("floorchannels_call", "load.done", "--broadcast")
        await await_until(
            lambda: all(client.done for client in clients), timeout=60, what="every client to catch up"
        )
        for client in clients:
            client.stopped = True
            await client.drop()
        await asyncio.gather(*tasks)

        complete = with_resync = 0
        for client in clients:
            assert client.numbers == sorted(set(client.numbers)), (
                f"each message once, in order: {client.explain_order()}"
            )
            missing = set(range(MESSAGES)) - set(client.numbers)
            if missing:
                assert client.resyncs, f"{len(missing)} messages lost without a resync"
                with_resync += 1
            else:
                complete += 1
        at_most_once = sum(client.at_most_once_loss for client in clients)
        with capsys.disabled():
            print(
                f"\n[chaos] {CLIENTS} clients, {MESSAGES} messages, {drops} dropped connections, daphne restarted once: "
                f"{complete} clients hold every message exactly once and in order, {with_resync} got a resync; "
                f"{sum(c.duplicates_dropped for c in clients)} replayed duplicates dropped by id; "
                f"{at_most_once} deliveries were replayed that at-most-once delivery (raw Channels) would have lost "
                f"({at_most_once / CLIENTS:.0f} per client)."
            )
        assert complete + with_resync == CLIENTS
    finally:
        redis.stop()


async def test_history_lost_with_redis_means_an_epoch_resync(project_factory):
    """Redis restarted without persistence: the history is gone, and the client is told."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    redis = Redis()
    try:
        project = project_factory(redis.url)
        server = project.daphne()
        key, probe_key = Browserless(server).page_key(), Browserless(server).page_key()

        async def recv(connection, timeout=5):
            while True:  # the sample page's windows are present in "chat": skip those diffs
                frame = json.loads(await asyncio.wait_for(connection.recv(), timeout))
                if frame.get("signal") != "fc.presence.diff":
                    return frame

        async def hello(resume=None, window_key=key):
            connection = await connect(server.ws)
            frame = {"type": "hello", "window_key": window_key, "protocol": 1}
            if resume:
                frame["resume"] = resume
            await connection.send(json.dumps(frame))
            return connection, await recv(connection)

        async def chat(connection, text):
            """Broadcast ``text`` from this window; the frames before it comes back."""
            call = {"type": "call", "id": text, "signal": "demo.chat", "kwargs": {"text": text}}
            await connection.send(json.dumps(call))
            frames = []
            while (frame := await recv(connection)).get("kwargs", {}).get("text") != text:
                assert not (frame["type"] == "reply" and not frame["ok"]), frame
                frames.append(frame)
            return frames

        probes = itertools.count()

        async def broadcasts_come_back():
            """The server publishes and its hub, subscribed again, delivers."""
            try:
                connection, welcome = await hello(window_key=probe_key)
                try:
                    return (
                        welcome["type"] == "welcome"
                        and await chat(connection, f"probe {next(probes)}") is not None
                    )
                finally:
                    await connection.close()
            except (OSError, TimeoutError, ConnectionClosed, AssertionError):
                return False

        connection, welcome = await hello()
        await sync_to_async(project.manage)("floorchannels_call", "before", "--broadcast")
        seen = await recv(connection)
        await connection.close()

        redis.stop()
        redis.start()
        await await_until(broadcasts_come_back, timeout=30, what="the server to publish and deliver again")
        await sync_to_async(project.manage)("floorchannels_call", "after", "--broadcast")
        connection, welcome = await hello({"e": seen["e"], "seqs": {seen["g"]: seen["seq"]}})
        assert welcome["e"] != seen["e"]
        # A live broadcast sent after the hello comes after whatever the resume sends.
        frames = await chat(connection, "end of the resume")
        resyncs = [f for f in frames if f["type"] == "resync"]
        assert [(f["reason"], f["g"]) for f in resyncs] == [("epoch", seen["g"])]
        assert resyncs[0]["e"] == welcome["e"]
        await connection.close()
    finally:
        redis.stop()
