import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Client } from "../src/client";
import type { ClientOptions } from "../src/client";
import { FloorchannelsError } from "../src/errors";
import { FakeSocket } from "./fake-socket";

const clients: Client[] = [];

function makeClient(options: Partial<ClientOptions> = {}): Client {
  return remember(new Client({
    url: "ws://example.test/ws/floorchannels/",
    windowKey: "key-1",
    WebSocket: FakeSocket,
    random: () => 0,
    ...options,
  }));
}

function remember(client: Client): Client {
  clients.push(client);
  return client;
}

function events(client: Client, type: string): any[] {
  const seen: any[] = [];
  client.addEventListener(type, (e) => seen.push((e as CustomEvent).detail));
  return seen;
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

describe("handshake and state", () => {
  it("sends hello with the key and protocol, then is open after welcome", () => {
    const client = makeClient();
    const changes = events(client, "statechange");
    expect(client.state).toBe("connecting");
    const ws = FakeSocket.last;
    expect(ws.url).toBe("ws://example.test/ws/floorchannels/");
    ws.open();
    expect(ws.sent).toEqual([{ type: "hello", window_key: "key-1", protocol: 2 }]);
    expect(client.state).toBe("connecting");
    ws.welcome({ window_id: "abc" });
    expect(client.state).toBe("open");
    expect(client.windowId).toBe("abc");
    expect(changes).toEqual([{ state: "open", previous: "connecting" }]);
  });

  it("emits welcome with the frame", () => {
    const client = makeClient();
    const welcomes = events(client, "welcome");
    FakeSocket.last.accept({ window_id: "zz" });
    expect(welcomes).toHaveLength(1);
    expect(welcomes[0].window_id).toBe("zz");
  });

  it("gives up on an attempt with no welcome in time and reconnects", () => {
    makeClient({ connectTimeout: 3000 });
    const first = FakeSocket.last;
    first.open();
    vi.advanceTimersByTime(3000);
    expect(first.closedWith).not.toBeNull();
    vi.advanceTimersByTime(500);
    expect(FakeSocket.instances).toHaveLength(2);
  });

  it("ignores frames that are not JSON and unknown frame types", () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    ws.receive("not json{");
    ws.receive({ type: "something_new" });
    expect(client.state).toBe("open");
  });
});

describe("call", () => {
  it("resolves with the result of an ok reply", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const p = client.call("demo.add", { a: 1, b: 2 });
    const frame = ws.sentOfType("call")[0];
    expect(frame).toEqual({ type: "call", id: expect.anything(), signal: "demo.add", kwargs: { a: 1, b: 2 } });
    ws.receive({ type: "reply", id: frame.id, ok: true, result: 3 });
    await expect(p).resolves.toBe(3);
  });

  it("sends empty kwargs by default", () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    client.call("demo.ping").catch(() => {});
    expect(ws.sentOfType("call")[0].kwargs).toEqual({});
  });

  it("matches replies to calls by id, in any order", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const p1 = client.call("a");
    const p2 = client.call("b");
    const [f1, f2] = ws.sentOfType("call");
    expect(f1.id).not.toEqual(f2.id);
    ws.receive({ type: "reply", id: f2.id, ok: true, result: "two" });
    ws.receive({ type: "reply", id: f1.id, ok: true, result: "one" });
    await expect(p1).resolves.toBe("one");
    await expect(p2).resolves.toBe("two");
  });

  it("rejects with the server's error code and message", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    for (const code of ["unknown_signal", "forbidden", "invalid_arguments", "server_error", "timeout"]) {
      const p = client.call("x.y");
      const frame = ws.sentOfType("call").pop();
      ws.receive({ type: "reply", id: frame.id, ok: false, error: { code, message: `msg ${code}` } });
      const error = await p.catch((e) => e);
      expect(error).toBeInstanceOf(FloorchannelsError);
      expect(error).toBeInstanceOf(Error);
      expect(error.code).toBe(code);
      expect(error.message).toBe(`msg ${code}`);
      expect(error.signal).toBe("x.y");
    }
  });

  it("resolves a queued reply with null, or {result, queued} with reply: true", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const p1 = client.call("slow.task");
    const p2 = client.call("slow.task", {}, { reply: true });
    const p3 = client.call("fast", {}, { reply: true });
    const [f1, f2, f3] = ws.sentOfType("call");
    ws.receive({ type: "reply", id: f1.id, ok: true, queued: true });
    ws.receive({ type: "reply", id: f2.id, ok: true, queued: true });
    ws.receive({ type: "reply", id: f3.id, ok: true, result: { n: 1 } });
    await expect(p1).resolves.toBeNull();
    await expect(p2).resolves.toEqual({ result: null, queued: true });
    await expect(p3).resolves.toEqual({ result: { n: 1 }, queued: false });
  });

  it("times out with code timeout and ignores a late reply", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const p = client.call("slow", {}, { timeout: 1000 });
    const id = ws.sentOfType("call")[0].id;
    vi.advanceTimersByTime(999);
    let settled = false;
    p.catch(() => {}).finally(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    vi.advanceTimersByTime(1);
    await expect(p).rejects.toMatchObject({ code: "timeout" });
    ws.receive({ type: "reply", id, ok: true, result: 1 }); // no throw
  });

  it("uses the client's callTimeout by default; 0 means no timeout", async () => {
    const client = makeClient({ callTimeout: 2000 });
    FakeSocket.last.accept();
    const p = client.call("slow");
    const q = client.call("forever", {}, { timeout: 0 });
    vi.advanceTimersByTime(2000);
    await expect(p).rejects.toMatchObject({ code: "timeout" });
    let settled = false;
    q.finally(() => (settled = true)).catch(() => {});
    vi.advanceTimersByTime(20000); // less than a heartbeat: the link stays up

    await Promise.resolve();
    expect(settled).toBe(false);
  });
});

describe("offline buffer", () => {
  it("holds calls made before welcome and sends them in order after it", async () => {
    const client = makeClient();
    const p1 = client.call("one");
    const p2 = client.call("two");
    expect(client.buffered).toBe(2);
    const ws = FakeSocket.last;
    ws.open();
    expect(ws.sentOfType("call")).toEqual([]); // hello must come first, and welcome before calls
    ws.welcome();
    expect(ws.sentOfType("call").map((f) => f.signal)).toEqual(["one", "two"]);
    expect(client.buffered).toBe(0);
    const [f1, f2] = ws.sentOfType("call");
    ws.receive({ type: "reply", id: f1.id, ok: true, result: 1 });
    ws.receive({ type: "reply", id: f2.id, ok: true, result: 2 });
    await expect(Promise.all([p1, p2])).resolves.toEqual([1, 2]);
  });

  it("rejects with buffer_full when the buffer is full", async () => {
    const client = makeClient({ bufferSize: 3 });
    const ok = [client.call("a"), client.call("b"), client.call("c")];
    const error = await client.call("d").catch((e) => e);
    expect(error).toBeInstanceOf(FloorchannelsError);
    expect(error.code).toBe("buffer_full");
    expect(client.buffered).toBe(3);
    ok.forEach((p) => p.catch(() => {}));
  });

  it("times out buffered calls and frees their place", async () => {
    const client = makeClient({ bufferSize: 1 });
    const p = client.call("a", {}, { timeout: 500 });
    vi.advanceTimersByTime(500);
    await expect(p).rejects.toMatchObject({ code: "timeout" });
    expect(client.buffered).toBe(0);
    FakeSocket.last.accept();
    expect(FakeSocket.last.sentOfType("call")).toEqual([]);
  });

  it("buffers while reconnecting and flushes on the new socket", () => {
    const client = makeClient();
    const first = FakeSocket.last;
    first.accept();
    first.serverClose(1006);
    expect(client.state).toBe("connecting");
    client.call("later").catch(() => {});
    vi.advanceTimersByTime(500);
    const second = FakeSocket.last;
    expect(second).not.toBe(first);
    second.accept();
    expect(second.sentOfType("call").map((f) => f.signal)).toEqual(["later"]);
  });

  it("rejects calls in flight with disconnected when the socket drops", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const p = client.call("x");
    ws.serverClose(1006);
    await expect(p).rejects.toMatchObject({ code: "disconnected" });
  });
});

describe("signals: on/off", () => {
  it("runs every handler of the signal with kwargs and the frame", () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const a = vi.fn();
    const b = vi.fn();
    const other = vi.fn();
    client.on("chat.message", a);
    client.on("chat.message", b);
    client.on("chat.other", other);
    const frame = { type: "signal", signal: "chat.message", kwargs: { text: "hi" }, id: "m1" };
    ws.receive(frame);
    expect(a).toHaveBeenCalledWith({ text: "hi" }, frame);
    expect(b).toHaveBeenCalledTimes(1);
    expect(other).not.toHaveBeenCalled();
  });

  it("off removes one handler; the returned function too; off(name) removes all", () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const a = vi.fn();
    const b = vi.fn();
    const c = vi.fn();
    client.on("s", a);
    const offB = client.on("s", b);
    client.on("s", c);
    client.off("s", a);
    offB();
    ws.receive({ type: "signal", signal: "s", kwargs: {} });
    expect(a).not.toHaveBeenCalled();
    expect(b).not.toHaveBeenCalled();
    expect(c).toHaveBeenCalledTimes(1);
    client.off("s");
    ws.receive({ type: "signal", signal: "s", kwargs: {} });
    expect(c).toHaveBeenCalledTimes(1);
  });

  it("a throwing handler does not stop the others, and is logged", async () => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const after = vi.fn();
    client.on("s", () => {
      throw new Error("boom");
    });
    client.on("s", async () => {
      throw new Error("async boom");
    });
    client.on("s", after);
    ws.receive({ type: "signal", signal: "s", kwargs: {} });
    expect(after).toHaveBeenCalledTimes(1);
    await Promise.resolve();
    await Promise.resolve();
    expect(log).toHaveBeenCalledTimes(2);
  });

  it("passes {} when a signal frame has no kwargs", () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const h = vi.fn();
    client.on("s", h);
    ws.receive({ type: "signal", signal: "s" });
    expect(h.mock.calls[0][0]).toEqual({});
  });
});

describe("reconnect", () => {
  it("reconnects after an abnormal close, 1001 and 4408, with backoff delays", () => {
    const client = makeClient({ random: () => 0.999999 });
    const disconnects = events(client, "disconnect");
    FakeSocket.last.serverClose(1006); // never welcomed: attempt 0 -> up to 1000 ms
    expect(client.state).toBe("connecting");
    vi.advanceTimersByTime(999);
    expect(FakeSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.instances).toHaveLength(2);
    FakeSocket.last.serverClose(1001); // attempt 1 -> 2000 ms
    vi.advanceTimersByTime(2000);
    expect(FakeSocket.instances).toHaveLength(3);
    FakeSocket.last.open();
    FakeSocket.last.serverClose(4408); // attempt 2 -> 4000 ms
    vi.advanceTimersByTime(3999);
    expect(FakeSocket.instances).toHaveLength(3);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.instances).toHaveLength(4);
    expect(disconnects.map((d) => [d.code, d.delay])).toEqual([
      [1006, 1000],
      [1001, 2000],
      [4408, 4000],
    ]);
  });

  it("comes back at once, within backoffMin, when the server is going away (4503)", () => {
    const client = makeClient({ random: () => 0.5 });
    const disconnects = events(client, "disconnect");
    FakeSocket.last.accept();
    FakeSocket.last.serverClose(1006); // a crash: the backoff's delay (500-1000 ms)
    vi.advanceTimersByTime(750);
    FakeSocket.last.accept();
    for (let i = 0; i < 3; i += 1) {
      FakeSocket.last.serverClose(4503); // a deploy: no backoff growth, whatever the count
      vi.advanceTimersByTime(250);
      FakeSocket.last.accept();
    }
    expect(client.state).toBe("open");
    expect(disconnects.map((d) => [d.code, d.delay])).toEqual([
      [1006, 750],
      [4503, 250],
      [4503, 250],
      [4503, 250],
    ]);
  });

  it("resets the backoff after a successful welcome", () => {
    const client = makeClient({ random: () => 0.999999 });
    const disconnects = events(client, "disconnect");
    FakeSocket.last.serverClose(1006);
    vi.advanceTimersByTime(1000);
    FakeSocket.last.serverClose(1006);
    vi.advanceTimersByTime(2000);
    FakeSocket.last.accept();
    FakeSocket.last.serverClose(1001);
    expect(disconnects.map((d) => d.delay)).toEqual([1000, 2000, 1000]);
  });

  it("never waits longer than backoffMax", () => {
    const client = makeClient({ random: () => 0.999999, backoffMin: 500, backoffMax: 3000 });
    const disconnects = events(client, "disconnect");
    for (let i = 0; i < 8; i++) {
      FakeSocket.last.serverClose(1006);
      vi.advanceTimersByTime(3000);
    }
    expect(Math.max(...disconnects.map((d) => d.delay))).toBe(3000);
    expect(FakeSocket.instances).toHaveLength(9);
  });

  it("goes back to connecting when an open link drops, then open again", () => {
    const client = makeClient();
    const states = events(client, "statechange");
    FakeSocket.last.accept();
    FakeSocket.last.serverClose(1001);
    vi.advanceTimersByTime(500);
    FakeSocket.last.accept();
    expect(states.map((s) => s.state)).toEqual(["open", "connecting", "open"]);
  });

  it("uses the newest key from a refresh frame on the next hello", () => {
    const client = makeClient();
    const refreshes = events(client, "refresh");
    const first = FakeSocket.last;
    first.accept();
    first.receive({ type: "refresh", window_key: "key-2", key_expires: 123 });
    first.receive({ type: "refresh", window_key: "key-3", key_expires: 456 });
    expect(refreshes.at(-1)).toEqual({ windowKey: "key-3", keyExpires: 456, source: "server" });
    expect(client.keyExpires).toBe(456);
    first.serverClose(1006);
    vi.advanceTimersByTime(500);
    const second = FakeSocket.last;
    second.open();
    expect(second.sent[0]).toEqual({ type: "hello", window_key: "key-3", protocol: 2 });
  });

  it("retries at once when the browser comes back online", () => {
    const client = makeClient({ random: () => 0.999999 });
    FakeSocket.last.serverClose(1006);
    expect(FakeSocket.instances).toHaveLength(1);
    window.dispatchEvent(new Event("online"));
    expect(FakeSocket.instances).toHaveLength(2);
    window.dispatchEvent(new Event("online")); // not waiting: nothing to do
    expect(FakeSocket.instances).toHaveLength(2);
    client.close();
    FakeSocket.last.serverClose(1006);
    window.dispatchEvent(new Event("online"));
    expect(FakeSocket.instances).toHaveLength(2);
  });

  it("ignores events from a socket it has given up", () => {
    const client = makeClient({ connectTimeout: 1000 });
    const stale = FakeSocket.last;
    vi.advanceTimersByTime(1000); // dropped
    vi.advanceTimersByTime(500);
    const fresh = FakeSocket.last;
    expect(fresh).not.toBe(stale);
    stale.serverClose(1006); // handlers were detached
    expect(stale.onclose).toBeNull();
    fresh.accept();
    expect(client.state).toBe("open");
  });
});

describe("refused keys", () => {
  // 4400 is final too, once the client says protocol 1 (see protocol2.test.ts).
  for (const code of [4401, 4403, 4410]) {
    it(`stops for good after close ${code}`, async () => {
      const client = makeClient();
      const refused = events(client, "refused");
      const ws = FakeSocket.last;
      ws.open();
      const buffered = client.call("a");
      ws.serverClose(code, "nope");
      expect(client.state).toBe("closed");
      expect(client.closedBy).toBe(code);
      expect(refused).toEqual([{ code, reason: "nope" }]);
      await expect(buffered).rejects.toMatchObject({ code: "closed" });
      vi.advanceTimersByTime(10 * 60 * 1000);
      expect(FakeSocket.instances).toHaveLength(1);
      await expect(client.call("b")).rejects.toMatchObject({ code: "closed" });
    });
  }

  it("rejects calls in flight with closed when refused later", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const p = client.call("a");
    ws.serverClose(4403);
    await expect(p).rejects.toMatchObject({ code: "disconnected" });
    expect(client.state).toBe("closed");
  });
});

describe("heartbeat", () => {
  it("pings every heartbeat seconds from welcome", () => {
    makeClient();
    const ws = FakeSocket.last;
    ws.accept({ heartbeat: 10 });
    vi.advanceTimersByTime(9999);
    expect(ws.sentOfType("ping")).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(ws.sentOfType("ping")).toHaveLength(1);
    ws.receive({ type: "pong", id: ws.sentOfType("ping")[0].id });
    vi.advanceTimersByTime(10000);
    expect(ws.sentOfType("ping")).toHaveLength(2);
  });

  it("defaults to the heartbeat option when welcome names none", () => {
    makeClient({ heartbeat: 3 });
    const ws = FakeSocket.last;
    ws.open();
    ws.receive({ type: "welcome", window_id: "w", protocol: 1 });
    vi.advanceTimersByTime(3000);
    expect(ws.sentOfType("ping")).toHaveLength(1);
  });

  it("treats a silent link as dead: closes and reconnects", () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept({ heartbeat: 10 });
    vi.advanceTimersByTime(10000); // ping sent
    expect(ws.sentOfType("ping")).toHaveLength(1);
    vi.advanceTimersByTime(9999); // default timeout: 10/2 + 5 = 10 s
    expect(client.state).toBe("open");
    vi.advanceTimersByTime(1);
    expect(ws.closedWith).not.toBeNull();
    expect(client.state).toBe("connecting");
    vi.advanceTimersByTime(500);
    expect(FakeSocket.instances).toHaveLength(2);
  });

  it("any frame counts as a sign of life", () => {
    const client = makeClient({ heartbeatTimeout: 2000 });
    const ws = FakeSocket.last;
    ws.accept({ heartbeat: 10 });
    vi.advanceTimersByTime(10000);
    vi.advanceTimersByTime(1500);
    ws.receive({ type: "signal", signal: "x", kwargs: {} });
    vi.advanceTimersByTime(1000);
    expect(client.state).toBe("open");
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it("stops pinging after the socket drops", () => {
    makeClient();
    const ws = FakeSocket.last;
    ws.accept({ heartbeat: 1 });
    ws.serverClose(1006);
    vi.advanceTimersByTime(5000);
    expect(ws.sentOfType("ping")).toHaveLength(0);
  });
});

describe("close()", () => {
  it("closes the socket, stops reconnecting and rejects waiting calls", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const inflight = client.call("a");
    client.close();
    expect(ws.closedWith?.code).toBe(1000);
    expect(client.state).toBe("closed");
    expect(client.closedBy).toBe("client");
    await expect(inflight).rejects.toMatchObject({ code: "closed" });
    vi.advanceTimersByTime(60000);
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it("cancels a pending reconnect", () => {
    const client = makeClient();
    FakeSocket.last.serverClose(1006);
    client.close();
    vi.advanceTimersByTime(60000);
    expect(FakeSocket.instances).toHaveLength(1);
  });
});

describe("server error frames", () => {
  it("are dispatched as an error event", () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const client = makeClient();
    const errors = events(client, "error");
    FakeSocket.last.accept();
    FakeSocket.last.receive({ type: "error", code: "invalid_frame", message: "bad" });
    expect(errors).toEqual([{ code: "invalid_frame", message: "bad" }]);
  });
});
