import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Client, PROTOCOL_VERSION } from "../src/client";
import type { SignalFrame } from "../src/client";
import { FakeSocket } from "./fake-socket";

const clients: Client[] = [];

function makeClient(): Client {
  const client = new Client({ url: "ws://example.test/ws/", windowKey: "k1", WebSocket: FakeSocket, random: () => 0 });
  clients.push(client);
  return client;
}

function events(client: Client, type: string): any[] {
  const seen: any[] = [];
  client.addEventListener(type, (e) => seen.push((e as CustomEvent).detail));
  return seen;
}

/** Every frame a handler of `name` was given. */
function handled(client: Client, name = "s"): SignalFrame[] {
  const frames: SignalFrame[] = [];
  client.on(name, (_kwargs, frame) => void frames.push(frame));
  return frames;
}

/** Drop the socket and open (not welcome) the next one; returns it. */
function reopen(code = 1006): FakeSocket {
  FakeSocket.last.serverClose(code);
  vi.advanceTimersByTime(20_000);
  const ws = FakeSocket.last;
  ws.open();
  return ws;
}

beforeEach(() => {
  FakeSocket.reset();
  vi.useFakeTimers();
});
afterEach(() => {
  clients.splice(0).forEach((c) => c.close());
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("compact signals", () => {
  it("are handled as the signal frame they stand for, each form", () => {
    const client = makeClient();
    const frames = handled(client);
    const kwargs: any[] = [];
    client.on("s", (k) => void kwargs.push(k));
    const ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { W: "0-0", B: "10-0", T: "3-0" } });
    ws.receive(["s", { n: 1 }]);
    ws.receive(["s", { n: 2 }, "W", 1]);
    ws.receive(["s", { n: 3 }, "T", 4, null, { B: 11 }]);
    ws.receive(["s", { n: 4 }, "B", 12, "E1"]);
    expect(kwargs).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
    expect(frames).toEqual([
      { type: "signal", signal: "s", kwargs: { n: 1 } },
      { type: "signal", signal: "s", kwargs: { n: 2 }, g: "W", seq: "1-0", e: "E1" },
      { type: "signal", signal: "s", kwargs: { n: 3 }, g: "T", seq: "4-0", e: "E1", o: { B: "11-0" } },
      { type: "signal", signal: "s", kwargs: { n: 4 }, g: "B", seq: "12-0", e: "E1" },
    ]);
    expect(frames.every((f) => !("id" in f))).toBe(true);
  });

  it("name their topic for topicOf() as signal objects do", () => {
    const client = makeClient();
    const topics: unknown[] = [];
    client.on("s", (_k, frame) => void topics.push(client.topicOf(frame)));
    FakeSocket.last.accept({ e: "E1", seqs: { TROOM: "0-0" }, topics: [{ topic: "room", g: "TROOM", presence: false }] });
    FakeSocket.last.receive(["s", {}, "TROOM", 1]);
    FakeSocket.last.receive(["s", {}]);
    expect(topics).toEqual(["room", undefined]);
  });
});

describe("batches", () => {
  it("handle objects and compact signals in order, one handler call per signal", () => {
    const client = makeClient();
    const log: string[] = [];
    client.on("s", (k) => void log.push(`s${k.n}`));
    client.on("t", (k) => void log.push(`t${k.n}`));
    client.addEventListener("refresh", (e) => void log.push(`refresh ${(e as CustomEvent).detail.windowKey}`));
    client.addEventListener("resync", (e) => void log.push(`resync ${(e as CustomEvent).detail.group}`));
    const ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { G: "0-0", H: "0-0" } });
    ws.receive([
      ["s", { n: 1 }, "G", 1],
      { type: "refresh", window_key: "k2", key_expires: 2e9 },
      ["t", { n: 2 }],
      { type: "signal", signal: "s", kwargs: { n: 3 }, id: "m3", g: "H", seq: "1-0", e: "E1" },
      ["s", { n: 4 }, "G", 2],
      { type: "resync", reason: "history", g: "H", seq: "5-0", e: "E1" },
      ["t", { n: 5 }, "H", 6],
    ]);
    expect(log).toEqual(["s1", "refresh k2", "t2", "s3", "s4", "resync H", "t5"]);
    expect(reopen().sent[0]).toEqual({
      type: "hello",
      window_key: "k2",
      protocol: 2,
      resume: { e: "E1", seqs: { G: "2-0", H: "6-0" } },
    });
  });

  it("a batch of one compact signal is that signal", () => {
    const client = makeClient();
    const frames = handled(client);
    FakeSocket.last.accept({ e: "E1", seqs: { G: "0-0" } });
    FakeSocket.last.receive([["s", { a: 1 }, "G", 1]]);
    expect(frames).toEqual([{ type: "signal", signal: "s", kwargs: { a: 1 }, g: "G", seq: "1-0", e: "E1" }]);
  });

  it("stop at a handler that closed the client: the rest was for that socket", () => {
    const client = makeClient();
    const frames = handled(client);
    client.on("stop", () => client.close());
    FakeSocket.last.accept();
    FakeSocket.last.receive([["s", { n: 1 }], ["stop", {}], ["s", { n: 2 }]]);
    expect(frames.map((f) => f.kwargs.n)).toEqual([1]);
    expect(client.state).toBe("closed");
  });

  it("count as a sign of life like any frame", () => {
    makeClient();
    const ws = FakeSocket.last;
    ws.accept(); // heartbeat 25 s: pings at 25 s, dead 17.5 s later without a frame
    vi.advanceTimersByTime(25_000 + 17_000);
    ws.receive([["s", {}], ["s", {}]]);
    vi.advanceTimersByTime(1_000);
    expect(ws.closedWith).toBeNull();
  });
});

describe("epochs", () => {
  it("a frame's e is the epoch from then on; frames without e are in it", () => {
    const client = makeClient();
    const frames = handled(client);
    let ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { G: "0-0", H: "0-0" } });
    ws.receive(["s", {}, "G", 1]);
    ws.receive(["s", {}, "H", 1]);
    ws.receive(["s", {}, "G", 1, "E2"]); // history lost: G restarts in E2; H is forgotten
    ws.receive(["s", {}, "G", 2]);
    ws.receive(["s", {}, "G", 3, null, { H: 1 }]);
    expect(frames.map((f) => [f.g, f.seq, f.e])).toEqual([
      ["G", "1-0", "E1"],
      ["H", "1-0", "E1"],
      ["G", "1-0", "E2"],
      ["G", "2-0", "E2"],
      ["G", "3-0", "E2"],
    ]);
    ws = reopen();
    expect(ws.sent[0].resume).toEqual({ e: "E2", seqs: { G: "3-0" } });
  });

  it("the welcome's e is the epoch of frames without one", () => {
    const client = makeClient();
    const frames = handled(client);
    let ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { G: "0-0" } });
    ws.receive(["s", {}, "G", 1]);
    ws = reopen();
    ws.welcome({ e: "E7", seqs: { G: "0-0" } }); // the server's history was lost meanwhile
    ws.receive(["s", {}, "G", 1]); // a new message at a position seen in E1
    expect(frames.map((f) => [f.seq, f.e])).toEqual([
      ["1-0", "E1"],
      ["1-0", "E7"],
    ]);
    expect(reopen().sent[0].resume).toEqual({ e: "E7", seqs: { G: "1-0" } });
  });
});

describe("duplicates without ids", () => {
  it("a position seen already is not handled again", () => {
    const client = makeClient();
    const frames = handled(client);
    const ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { G: "0-0" } });
    ws.receive(["s", { n: 1 }, "G", 1]);
    ws.receive(["s", { n: 1 }, "G", 1]);
    ws.receive([["s", { n: 2 }, "G", 2], ["s", { n: 2 }, "G", 2]]);
    ws.receive(["s", { n: 3 }, "G", 3, "E1"]);
    ws.receive(["s", { n: 3 }, "G", 3, null, {}]);
    expect(frames.map((f) => f.kwargs.n)).toEqual([1, 2, 3]);
  });

  it("a position seen through another frame's o is not handled again, nor the other way round", () => {
    const client = makeClient();
    const frames = handled(client);
    let ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { T: "3-0", B: "10-0", U: "0-0" } });
    ws.receive(["s", { n: 1 }, "T", 4, null, { B: 11 }]);
    ws.receive(["s", { n: 2 }, "U", 1]);
    ws = reopen();
    ws.welcome({ e: "E1", seqs: { T: "4-0", B: "11-0", U: "1-0" } });
    // A replay offers them again through other groups.
    ws.receive(["s", { n: 1 }, "B", 11]);
    ws.receive(["s", { n: 2 }, "B", 12, null, { U: 1 }]);
    ws.receive(["s", { n: 3 }, "B", 13]);
    expect(frames.map((f) => f.kwargs.n)).toEqual([1, 2, 3]);
    expect(reopen().sent[0].resume).toEqual({ e: "E1", seqs: { T: "4-0", B: "13-0", U: "1-0" } });
  });

  it("remembers a bounded number of positions, oldest out first", () => {
    const client = makeClient();
    const frames = handled(client);
    const ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { G: "0-0" } });
    for (let n = 1; n <= 1001; n++) ws.receive(["s", { n }, "G", n]);
    ws.receive(["s", { n: 1001 }, "G", 1001]);
    ws.receive(["s", { n: 2 }, "G", 2]);
    expect(frames).toHaveLength(1001);
    ws.receive(["s", { n: 1 }, "G", 1]); // the oldest, forgotten
    expect(frames).toHaveLength(1002);
  });

  it("signals without a position are never duplicates", () => {
    const client = makeClient();
    const frames = handled(client);
    FakeSocket.last.accept({ e: "E1", seqs: {} });
    FakeSocket.last.receive([["s", {}], ["s", {}]]);
    expect(frames).toHaveLength(2);
  });

  it("a version 1 frame keeps the id check", () => {
    const client = makeClient();
    const frames = handled(client);
    const ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { G: "0-0", B: "0-0" } });
    ws.receive({ type: "signal", signal: "s", kwargs: {}, id: "m1", g: "G", seq: "1-0", e: "E1" });
    ws.receive({ type: "signal", signal: "s", kwargs: {}, id: "m1", g: "B", seq: "1-0", e: "E1" });
    ws.receive({ type: "signal", signal: "s", kwargs: {}, id: "m2" });
    ws.receive({ type: "signal", signal: "s", kwargs: {}, id: "m2" });
    expect(frames.map((f) => f.id)).toEqual(["m1", "m2"]);
  });
});

describe("malformed arrays", () => {
  it("are ignored, with one warning per kind, and what follows is handled", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const client = makeClient();
    const frames = handled(client);
    const ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { G: "0-0" } });
    const bad = [
      ["s"],
      ["s", {}, "G"],
      ["s", {}, "G", 1, null, {}, "extra"],
      ["s", "kwargs"],
      ["s", {}, 7, 1],
      ["s", {}, "G", "1"],
      ["s", {}, "G", 1.5],
      ["s", {}, "G", 1, {}],
      ["s", {}, "G", 1, null, { B: "1-0" }],
    ];
    for (let round = 0; round < 2; round++) {
      for (const frame of bad) expect(() => ws.receive(frame)).not.toThrow();
      expect(() => ws.receive([...bad, ["s", { ok: round }, "G", round + 1]])).not.toThrow();
    }
    expect(() => ws.receive([[[1]], 5, null])).not.toThrow(); // nested batch, not frames
    expect(() => ws.receive([])).not.toThrow();
    expect(() => ws.receive([null])).not.toThrow();
    expect(frames.map((f) => f.kwargs)).toEqual([{ ok: 0 }, { ok: 1 }]);
    // length, kwargs, g, seq, e, o, batch
    expect(warn).toHaveBeenCalledTimes(7);
    expect(client.state).toBe("open");
    expect(reopen().sent[0].resume).toEqual({ e: "E1", seqs: { G: "2-0" } });
  });
});

describe("protocol negotiation", () => {
  it("says protocol 2 in hello", () => {
    expect(PROTOCOL_VERSION).toBe(2);
    makeClient();
    FakeSocket.last.open();
    expect(FakeSocket.last.sent).toEqual([{ type: "hello", window_key: "k1", protocol: 2 }]);
  });

  it("falls back to 1 when the server refuses the hello (4400) before a welcome, for good", () => {
    const client = makeClient();
    const refused = events(client, "refused");
    const disconnects = events(client, "disconnect");
    const first = FakeSocket.last;
    first.open();
    const buffered = client.call("a");
    first.serverClose(4400, "the first frame must be a hello for protocol 1");
    expect(client.state).toBe("connecting");
    expect(refused).toEqual([]);
    expect(disconnects).toEqual([{ code: 4400, reason: "the first frame must be a hello for protocol 1", delay: 500 }]);
    vi.advanceTimersByTime(500);
    let ws = FakeSocket.last;
    expect(ws).not.toBe(first);
    ws.open();
    expect(ws.sent).toEqual([{ type: "hello", window_key: "k1", protocol: 1 }]);
    ws.welcome({ protocol: 1 });
    expect(ws.sentOfType("call").map((f) => f.signal)).toEqual(["a"]); // the buffered call went out
    void buffered.catch(() => {});
    // Still 1 on later reconnects.
    ws = reopen();
    expect(ws.sent[0].protocol).toBe(1);
    // A 4400 to a version 1 hello is final.
    ws.serverClose(4400, "nope");
    expect(client.state).toBe("closed");
    expect(refused).toEqual([{ code: 4400, reason: "nope" }]);
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.last).toBe(ws);
  });

  it("does not fall back on a 4400 after a welcome: it is final", () => {
    const client = makeClient();
    const refused = events(client, "refused");
    const ws = FakeSocket.last;
    ws.accept();
    ws.serverClose(4400, "nope");
    expect(client.state).toBe("closed");
    expect(client.closedBy).toBe(4400);
    expect(refused).toEqual([{ code: 4400, reason: "nope" }]);
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it("falls back on a reconnect too (a version 1 server behind the same URL), resuming where v2 stood", () => {
    const client = makeClient();
    const frames = handled(client);
    let ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { W: "0-0", B: "10-0" } });
    ws.receive([["s", { n: 1 }, "W", 1], ["s", { n: 2 }, "W", 2, null, { B: 11 }], ["s", { n: 3 }, "B", 12]]);
    ws = reopen();
    expect(ws.sent[0]).toEqual({ type: "hello", window_key: "k1", protocol: 2, resume: { e: "E1", seqs: { W: "2-0", B: "12-0" } } });
    ws.serverClose(4400);
    expect(client.state).toBe("connecting");
    vi.advanceTimersByTime(20_000);
    ws = FakeSocket.last;
    ws.open();
    expect(ws.sent[0]).toEqual({ type: "hello", window_key: "k1", protocol: 1, resume: { e: "E1", seqs: { W: "2-0", B: "12-0" } } });
    ws.welcome({ protocol: 1, e: "E1", seqs: { W: "2-0", B: "12-0" } });
    // The version 1 replay through another group: a position seen under v2 is a duplicate.
    ws.receive({ type: "signal", signal: "s", kwargs: { n: 2 }, id: "m2", g: "B", seq: "11-0", e: "E1" });
    ws.receive({ type: "signal", signal: "s", kwargs: { n: 4 }, id: "m4", g: "B", seq: "13-0", e: "E1" });
    expect(frames.map((f) => f.kwargs.n)).toEqual([1, 2, 3, 4]);
  });

  it("a welcome saying protocol 1, or none, means version 1 from then on", () => {
    for (const protocol of [1, undefined]) {
      FakeSocket.reset();
      makeClient();
      let ws = FakeSocket.last;
      ws.open();
      expect(ws.sent[0].protocol).toBe(2);
      ws.welcome({ protocol });
      ws = reopen();
      expect(ws.sent[0].protocol).toBe(1);
    }
  });
});

describe("resume after a version 2 session", () => {
  it("carries the last contiguous seq of each group, as N-0 strings", () => {
    makeClient();
    let ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { W: "0-0", B: "10-0", T: "3-0" } });
    ws.receive([
      ["s", {}, "W", 1],
      ["s", {}, "T", 4, null, { B: 11 }],
      ["s", {}, "B", 12],
    ]);
    ws.receive(["s", {}, "B", 14]); // 13 is missing: B stays at 12
    ws.receive(["s", {}]); // no position
    ws = reopen();
    expect(ws.sent[0]).toEqual({
      type: "hello",
      window_key: "k1",
      protocol: 2,
      resume: { e: "E1", seqs: { W: "1-0", B: "12-0", T: "4-0" } },
    });
  });
});

/**
 * One sequence of messages, each as a version 1 object and a version 2 compact array: two
 * clients fed one form each must run the same handlers, reconnect at the same moments and
 * resume from the same positions.
 */
describe("the same messages in either version", () => {
  interface Message {
    id: string;
    g: string;
    n: number;
    /** The epoch changes at this message (v2 sends `e` only then). */
    e?: string;
    o?: Record<string, number>;
  }

  /** A client with its own sockets and a log of what it did. */
  function side() {
    const sockets: FakeSocket[] = [];
    class Socket extends FakeSocket {
      constructor(url: string) {
        super(url);
        sockets.push(this);
      }
    }
    const client = new Client({ url: "ws://example.test/ws/", windowKey: "k1", WebSocket: Socket, random: () => 0 });
    clients.push(client);
    const log: string[] = [];
    client.on("s", (k) => void log.push(`run ${k.id}`));
    for (const type of ["disconnect", "resync"]) {
      client.addEventListener(type, (e) => void log.push(`${type} ${JSON.stringify((e as CustomEvent).detail)}`));
    }
    return { client, log, sockets, ws: () => sockets.at(-1)! };
  }

  it("recovery behaves exactly as in version 1", () => {
    const one = side();
    const two = side();
    let epoch = "E1";
    const v1 = (m: Message): object => {
      if (m.e) epoch = m.e;
      const frame: Record<string, unknown> = { type: "signal", signal: "s", kwargs: { id: m.id }, id: m.id, g: m.g, seq: `${m.n}-0`, e: epoch };
      if (m.o) frame.o = Object.fromEntries(Object.entries(m.o).map(([g, n]) => [g, `${n}-0`]));
      return frame;
    };
    const v2 = (m: Message): unknown[] => {
      if (m.o) return ["s", { id: m.id }, m.g, m.n, m.e ?? null, m.o];
      return m.e ? ["s", { id: m.id }, m.g, m.n, m.e] : ["s", { id: m.id }, m.g, m.n];
    };
    const send = (...messages: Message[]) => {
      for (const m of messages) one.ws().receive(v1(m));
      two.ws().receive(messages.length === 1 ? v2(messages[0]!) : messages.map(v2));
    };
    const accept = (e: string, seqs: Record<string, string>) => {
      for (const s of [one, two]) s.ws().accept({ e, seqs });
    };

    accept("E1", { W: "0-0", B: "10-0", T: "3-0" });
    send({ id: "m1", g: "W", n: 1 });
    send({ id: "m2", g: "T", n: 4, o: { B: 11 } }, { id: "m3", g: "B", n: 12 });
    send({ id: "m5", g: "B", n: 14 }); // a gap at B 13
    send({ id: "m2", g: "B", n: 11 }); // offered again through B
    send({ id: "m4", g: "B", n: 13 }, { id: "m7", g: "W", n: 3 }); // closes B's gap; opens one at W 2
    vi.advanceTimersByTime(1999);
    expect([one.sockets.length, two.sockets.length]).toEqual([1, 1]);
    vi.advanceTimersByTime(1 + 500); // the gap's deadline, then the backoff
    expect([one.sockets.length, two.sockets.length]).toEqual([2, 2]);
    accept("E1", { W: "3-0", B: "14-0", T: "4-0" });
    send({ id: "m6", g: "W", n: 2 }, { id: "m7", g: "W", n: 3 }); // the replay
    send({ id: "m8", g: "W", n: 1, e: "E2" }, { id: "m9", g: "W", n: 2 }, { id: "m10", g: "B", n: 1 });
    send({ id: "m9", g: "W", n: 2 });
    send({ id: "m12", g: "B", n: 3 }); // a gap no reconnect fills
    vi.advanceTimersByTime(2000 + 500);
    accept("E2", { W: "2-0", B: "3-0" });
    vi.advanceTimersByTime(2000);
    one.ws().serverClose(1006);
    two.ws().serverClose(1006);
    vi.advanceTimersByTime(500);
    one.ws().open();
    two.ws().open();

    expect(one.log).toEqual(two.log);
    expect(one.log).toEqual([
      "run m1",
      "run m2",
      "run m3",
      "run m5",
      "run m4",
      "run m7",
      'disconnect {"code":1006,"reason":"a gap in the messages of a group","delay":500}',
      "run m6",
      "run m8",
      "run m9",
      "run m10",
      "run m12",
      'disconnect {"code":1006,"reason":"a gap in the messages of a group","delay":500}',
      'resync {"reason":"gap","group":"B"}',
      'disconnect {"code":1006,"reason":"","delay":500}',
    ]);
    const hellos = (s: ReturnType<typeof side>) => s.sockets.map((ws) => ws.sentOfType("hello")[0].resume);
    expect(hellos(one)).toEqual(hellos(two));
    expect(hellos(two)).toEqual([
      undefined,
      { e: "E1", seqs: { W: "1-0", B: "14-0", T: "4-0" } },
      { e: "E2", seqs: { W: "2-0", B: "1-0" } },
      { e: "E2", seqs: { W: "2-0", B: "3-0" } },
    ]);
  });
});
