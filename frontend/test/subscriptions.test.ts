import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Client } from "../src/client";
import type { ClientOptions } from "../src/client";
import { FloorchannelsError } from "../src/errors";
import { Subscription } from "../src/subscriptions";
import { FakeSocket } from "./fake-socket";

const clients: Client[] = [];

function makeClient(options: Partial<ClientOptions> = {}): Client {
  const client = new Client({
    url: "ws://example.test/ws/floorchannels/",
    windowKey: "key-1",
    WebSocket: FakeSocket,
    random: () => 0,
    ...options,
  });
  clients.push(client);
  return client;
}

function events(client: Client, type: string): any[] {
  const seen: any[] = [];
  client.addEventListener(type, (e) => seen.push((e as CustomEvent).detail));
  return seen;
}

/** Answer the last `subscribe` frame on `ws` (ok, or with an error code). */
function answer(ws: FakeSocket, error?: string): any {
  const frame = ws.sentOfType("subscribe").at(-1);
  ws.receive(
    error
      ? { type: "reply", id: frame.id, ok: false, error: { code: error, message: `msg ${error}` } }
      : { type: "reply", id: frame.id, ok: true, result: null },
  );
  return frame;
}

function event(subscription: unknown, action: string, pk: string, data?: object): object {
  return { type: "event", subscription, resource: "notes", action, pk, ...(data ? { data } : {}), id: `m-${pk}-${action}` };
}

/** Reconnect: drop the socket, wait for the retry, accept the new one. */
function reconnect(): FakeSocket {
  FakeSocket.last.serverClose(1006);
  vi.advanceTimersByTime(500);
  const ws = FakeSocket.last;
  ws.accept();
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

describe("subscribe", () => {
  it("sends subscribe frames (with pk when given) and resolves after the ok reply", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const p1 = client.subscribe("notes", () => {});
    const p2 = client.subscribe("notes", { pk: 7 }, () => {});
    const p3 = client.subscribe("notes", { pk: "abc" }, () => {});
    const [f1, f2, f3] = ws.sentOfType("subscribe");
    expect(f1).toEqual({ type: "subscribe", id: expect.anything(), resource: "notes" });
    expect(f2).toEqual({ type: "subscribe", id: expect.anything(), resource: "notes", pk: 7 });
    expect(f3).toMatchObject({ pk: "abc" });
    expect(new Set([f1.id, f2.id, f3.id]).size).toBe(3);
    let settled = false;
    p1.finally(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    for (const f of [f1, f2, f3]) ws.receive({ type: "reply", id: f.id, ok: true, result: null });
    const [s1, s2] = await Promise.all([p1, p2, p3]);
    expect(s1).toBeInstanceOf(Subscription);
    expect(s1.resource).toBe("notes");
    expect(s1.pk).toBeUndefined();
    expect(s1.active).toBe(true);
    expect(s1.id).toBe(f1.id);
    expect(s2.pk).toBe(7);
    expect(client.subscriptionCount).toBe(3);
  });

  it("shares ids with calls, so replies never collide", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const call = client.call("x");
    const sub = client.subscribe("notes", () => {});
    const callId = ws.sentOfType("call")[0].id;
    const subId = ws.sentOfType("subscribe")[0].id;
    expect(callId).not.toEqual(subId);
    ws.receive({ type: "reply", id: subId, ok: true, result: null });
    ws.receive({ type: "reply", id: callId, ok: true, result: 42 });
    await expect(sub).resolves.toBeInstanceOf(Subscription);
    await expect(call).resolves.toBe(42);
  });

  it("rejects with the server's error code and forgets the subscription", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    for (const code of ["unknown_resource", "forbidden", "not_found", "too_many_subscriptions"]) {
      const handler = vi.fn();
      const p = client.subscribe("notes", { pk: 1 }, handler);
      const frame = answer(ws, code);
      const error = await p.catch((e) => e);
      expect(error).toBeInstanceOf(FloorchannelsError);
      expect(error.code).toBe(code);
      expect(error.message).toBe(`msg ${code}`);
      ws.receive(event(frame.id, "updated", "1", { id: 1 }));
      expect(handler).not.toHaveBeenCalled();
    }
    expect(client.subscriptionCount).toBe(0);
    reconnect();
    expect(FakeSocket.last.sentOfType("subscribe")).toEqual([]);
  });

  it("waits while offline and is sent right after welcome, before buffered calls", async () => {
    const client = makeClient();
    client.call("first").catch(() => {});
    const p = client.subscribe("notes", () => {});
    const ws = FakeSocket.last;
    ws.open();
    expect(ws.sentOfType("subscribe")).toEqual([]);
    ws.welcome();
    expect(ws.sent.map((f) => f.type)).toEqual(["hello", "subscribe", "call"]);
    answer(ws);
    await expect(p).resolves.toBeInstanceOf(Subscription);
  });

  it("made by a welcome listener, is sent once", () => {
    const client = makeClient();
    client.subscribe("early", () => {}).catch(() => {});
    client.addEventListener("welcome", () => void client.subscribe("notes", () => {}).catch(() => {}), { once: true });
    FakeSocket.last.accept();
    expect(FakeSocket.last.sentOfType("subscribe").map((f) => f.resource).sort()).toEqual(["early", "notes"]);
  });

  it("is sent again, still unconfirmed, when the socket drops before the reply", async () => {
    const client = makeClient();
    const resubscribes = events(client, "resubscribe");
    FakeSocket.last.accept();
    const p = client.subscribe("notes", () => {});
    const first = FakeSocket.last.sentOfType("subscribe")[0];
    const ws = reconnect();
    const second = ws.sentOfType("subscribe")[0];
    expect(second.id).not.toEqual(first.id);
    answer(ws);
    const sub = await p;
    expect(sub.id).toBe(second.id);
    expect(resubscribes).toEqual([]); // it was never live before: nothing was missed
  });

  it("rejects with closed when the client is or gets closed", async () => {
    const client = makeClient();
    const waiting = client.subscribe("notes", () => {});
    client.close();
    await expect(waiting).rejects.toMatchObject({ code: "closed" });
    await expect(client.subscribe("notes", () => {})).rejects.toMatchObject({ code: "closed" });
  });

  it("drops live subscriptions when the server refuses the key", async () => {
    const client = makeClient();
    FakeSocket.last.accept();
    const p = client.subscribe("notes", () => {});
    answer(FakeSocket.last);
    const sub = await p;
    FakeSocket.last.serverClose(4403);
    expect(sub.active).toBe(false);
    expect(client.subscriptionCount).toBe(0);
  });

  it("an aborted signal cancels it: before the reply (rejects with aborted, unsubscribes) or after", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const early = new AbortController();
    const p = client.subscribe("notes", { signal: early.signal }, () => {});
    const frame = ws.sentOfType("subscribe")[0];
    early.abort();
    await expect(p).rejects.toMatchObject({ code: "aborted" });
    expect(ws.sentOfType("unsubscribe")).toEqual([{ type: "unsubscribe", id: expect.anything(), subscription: frame.id }]);
    ws.receive({ type: "reply", id: frame.id, ok: true, result: null }); // late: ignored

    const late = new AbortController();
    const q = client.subscribe("notes", { signal: late.signal }, () => {});
    answer(ws);
    const sub = await q;
    late.abort();
    expect(sub.active).toBe(false);
    expect(ws.sentOfType("unsubscribe")).toHaveLength(2);

    const already = new AbortController();
    already.abort();
    await expect(client.subscribe("notes", { signal: already.signal }, () => {})).rejects.toMatchObject({ code: "aborted" });
    expect(client.subscriptionCount).toBe(0);
  });
});

describe("events", () => {
  it("reach the handler as {action, pk, data, resource, id}; pk is always a string", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const handler = vi.fn();
    const p = client.subscribe("notes", handler);
    const frame = answer(ws);
    await p;
    ws.receive({ type: "event", subscription: frame.id, resource: "notes", action: "created", pk: 5, data: { id: 5, text: "hi" }, id: "m1" });
    ws.receive({ type: "event", subscription: frame.id, resource: "notes", action: "deleted", pk: "5", id: "m2" });
    expect(handler.mock.calls.map((c) => c[0])).toEqual([
      { action: "created", pk: "5", data: { id: 5, text: "hi" }, resource: "notes", id: "m1", echo: false },
      { action: "deleted", pk: "5", data: undefined, resource: "notes", id: "m2", echo: false },
    ]);
    expect(handler.mock.calls[0][1]).toMatchObject({ type: "event", subscription: frame.id });
  });

  it("reach the handler once per id, even when a copy arrives", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const handler = vi.fn();
    const p = client.subscribe("notes", handler);
    const frame = answer(ws);
    await p;
    ws.receive(event(frame.id, "created", "1", { id: 1 }));
    ws.receive(event(frame.id, "created", "1", { id: 1 })); // the same message id again
    ws.receive(event(frame.id, "updated", "1", { id: 1 }));
    expect(handler.mock.calls.map((c) => c[0].action)).toEqual(["created", "updated"]);
  });

  it("are routed by subscription id: two subscriptions on one resource", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const list = vi.fn();
    const one = vi.fn();
    const p1 = client.subscribe("notes", list);
    const f1 = answer(ws);
    const p2 = client.subscribe("notes", { pk: 3 }, one);
    const f2 = answer(ws);
    await Promise.all([p1, p2]);
    ws.receive(event(f1.id, "created", "9", { id: 9 }));
    ws.receive(event(f2.id, "updated", "3", { id: 3 }));
    ws.receive(event(f1.id, "updated", "3", { id: 3 }));
    ws.receive(event(12345, "updated", "3", { id: 3 })); // no such subscription
    expect(list.mock.calls.map((c) => [c[0].action, c[0].pk])).toEqual([
      ["created", "9"],
      ["updated", "3"],
    ]);
    expect(one.mock.calls.map((c) => [c[0].action, c[0].pk])).toEqual([["updated", "3"]]);
  });

  it("a throwing handler is logged and does not break the client", async () => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const p = client.subscribe("notes", () => {
      throw new Error("boom");
    });
    const frame = answer(ws);
    await p;
    ws.receive(event(frame.id, "created", "1", { id: 1 }));
    expect(log).toHaveBeenCalledTimes(1);
    expect(client.state).toBe("open");
  });
});

describe("unsubscribe", () => {
  it("sends unsubscribe with the subscribe frame's id and stops the handler at once", async () => {
    const client = makeClient();
    const ws = FakeSocket.last;
    ws.accept();
    const handler = vi.fn();
    const p = client.subscribe("notes", handler);
    const frame = answer(ws);
    const sub = await p;
    sub.unsubscribe();
    const [unsub] = ws.sentOfType("unsubscribe");
    expect(unsub).toEqual({ type: "unsubscribe", id: expect.anything(), subscription: frame.id });
    expect(unsub.id).not.toEqual(frame.id);
    expect(sub.active).toBe(false);
    expect(sub.id).toBeUndefined();
    ws.receive(event(frame.id, "created", "1", { id: 1 })); // already on its way: not delivered
    expect(handler).not.toHaveBeenCalled();
    ws.receive({ type: "reply", id: unsub.id, ok: true, result: null }); // ignored
    sub.unsubscribe(); // idempotent
    expect(ws.sentOfType("unsubscribe")).toHaveLength(1);
    reconnect();
    expect(FakeSocket.last.sentOfType("subscribe")).toEqual([]);
  });

  it("offline, sends nothing (the server forgot the socket's subscriptions) and is not renewed", async () => {
    const client = makeClient();
    FakeSocket.last.accept();
    const p = client.subscribe("notes", () => {});
    answer(FakeSocket.last);
    const sub = await p;
    const old = FakeSocket.last;
    old.serverClose(1006);
    sub.unsubscribe();
    expect(old.sentOfType("unsubscribe")).toEqual([]);
    vi.advanceTimersByTime(500);
    FakeSocket.last.accept();
    expect(FakeSocket.last.sentOfType("subscribe")).toEqual([]);
  });
});

describe("after a reconnect", () => {
  it("re-sends every live subscription with fresh ids, maps events to them and dispatches resubscribe", async () => {
    const client = makeClient();
    const resubscribes = events(client, "resubscribe");
    FakeSocket.last.accept();
    const list = vi.fn();
    const one = vi.fn();
    const p1 = client.subscribe("notes", list);
    const old1 = answer(FakeSocket.last);
    const p2 = client.subscribe("notes", { pk: 3 }, one);
    const old2 = answer(FakeSocket.last);
    const [s1, s2] = await Promise.all([p1, p2]);

    const ws = reconnect();
    const frames = ws.sentOfType("subscribe");
    expect(frames).toEqual([
      { type: "subscribe", id: expect.anything(), resource: "notes" },
      { type: "subscribe", id: expect.anything(), resource: "notes", pk: 3 },
    ]);
    const ids = frames.map((f) => f.id);
    expect(ids).not.toContain(old1.id);
    expect(ids).not.toContain(old2.id);
    expect(resubscribes).toEqual([]); // not before the server accepted them
    for (const f of frames) ws.receive({ type: "reply", id: f.id, ok: true, result: null });
    expect(resubscribes).toEqual([
      { resource: "notes", pk: null, subscription: s1 },
      { resource: "notes", pk: 3, subscription: s2 },
    ]);
    expect(s1.id).toBe(frames[0].id);

    ws.receive(event(old1.id, "created", "1", { id: 1 })); // an old id means nothing on the new socket
    ws.receive(event(frames[0].id, "created", "2", { id: 2 }));
    ws.receive(event(frames[1].id, "updated", "3", { id: 3 }));
    expect(list.mock.calls.map((c) => c[0].pk)).toEqual(["2"]);
    expect(one.mock.calls.map((c) => c[0].pk)).toEqual(["3"]);

    s1.unsubscribe();
    expect(ws.sentOfType("unsubscribe")[0].subscription).toBe(frames[0].id);
  });

  it("drops a subscription whose renewal is refused and dispatches subscriptionerror", async () => {
    const client = makeClient();
    const errors = events(client, "subscriptionerror");
    const resubscribes = events(client, "resubscribe");
    FakeSocket.last.accept();
    const handler = vi.fn();
    const kept = vi.fn();
    const p1 = client.subscribe("notes", { pk: 3 }, handler);
    answer(FakeSocket.last);
    const p2 = client.subscribe("notes", kept);
    answer(FakeSocket.last);
    const [sub, other] = await Promise.all([p1, p2]);

    const ws = reconnect();
    const [f1, f2] = ws.sentOfType("subscribe");
    ws.receive({ type: "reply", id: f1.id, ok: false, error: { code: "forbidden", message: "no" } });
    ws.receive({ type: "reply", id: f2.id, ok: true, result: null });
    expect(errors).toEqual([{ resource: "notes", pk: 3, code: "forbidden", message: "no", subscription: sub }]);
    expect(resubscribes).toEqual([{ resource: "notes", pk: null, subscription: other }]);
    expect(sub.active).toBe(false);
    expect(other.active).toBe(true);
    ws.receive(event(f1.id, "updated", "3", { id: 3 }));
    expect(handler).not.toHaveBeenCalled();

    reconnect();
    expect(FakeSocket.last.sentOfType("subscribe").map((f) => f.pk)).toEqual([undefined]);
  });
});

describe("params and kwargs", () => {
  it("are sent in the subscribe frame, and again, unchanged, on every re-subscribe", async () => {
    const client = makeClient();
    FakeSocket.last.accept();
    const params = { project: 3, done: false, tag: ["a", "b"] };
    const p = client.subscribe("tasks", { params, kwargs: { project_pk: 7 } }, () => {});
    const first = answer(FakeSocket.last);
    const sub = await p;
    expect(first).toEqual({
      type: "subscribe",
      id: first.id,
      resource: "tasks",
      params: { project: 3, done: false, tag: ["a", "b"] },
      kwargs: { project_pk: 7 },
    });
    expect(sub.params).toEqual({ project: 3, done: false, tag: ["a", "b"] });
    expect(sub.kwargs).toEqual({ project_pk: 7 });
    // The caller's object is copied: changing it later does not change the subscription.
    params.project = 4;
    params.tag.push("c");
    const ws = reconnect();
    const again = ws.sentOfType("subscribe").at(-1);
    expect(again.id).not.toBe(first.id);
    expect(again.params).toEqual({ project: 3, done: false, tag: ["a", "b"] });
    expect(again.kwargs).toEqual({ project_pk: 7 });
  });

  it("are left out of the frame when absent, empty or undefined", async () => {
    const client = makeClient();
    FakeSocket.last.accept();
    client.subscribe("notes", { params: {}, kwargs: { x: undefined as unknown as string } }, () => {}).catch(() => {});
    const frame = FakeSocket.last.sentOfType("subscribe").at(-1);
    expect(frame).toEqual({ type: "subscribe", id: frame.id, resource: "notes" });
  });

  it("values a query string cannot carry reject with a TypeError naming them, and send nothing", async () => {
    const client = makeClient();
    FakeSocket.last.accept();
    const bad = [
      client.subscribe("tasks", { params: { project: { id: 3 } as unknown as number } }, () => {}),
      client.subscribe("tasks", { params: { tag: ["a", null as unknown as string] } }, () => {}),
      client.subscribe("tasks", { params: { n: Number.NaN } }, () => {}),
      client.subscribe("tasks", { kwargs: { project_pk: true as unknown as number } }, () => {}),
    ];
    await expect(bad[0]).rejects.toThrow(/params\.project must be a string, number, boolean/);
    await expect(bad[1]).rejects.toThrow(/params\.tag/);
    await expect(bad[2]).rejects.toThrow(/params\.n/);
    await expect(bad[3]).rejects.toThrow(/kwargs\.project_pk must be a string or a number/);
    await expect(bad[0]).rejects.toBeInstanceOf(TypeError);
    expect(FakeSocket.last.sentOfType("subscribe")).toEqual([]);
    expect(client.subscriptionCount).toBe(0);
  });

  it("a filter backend's refusal rejects with invalid_arguments", async () => {
    const client = makeClient();
    FakeSocket.last.accept();
    const p = client.subscribe("tasks", { params: { project: "x" } }, () => {});
    answer(FakeSocket.last, "invalid_arguments");
    await expect(p).rejects.toMatchObject({ code: "invalid_arguments" });
  });
});

describe("echo", () => {
  it("event.echo is true only on frames marked echo: true", async () => {
    const client = makeClient();
    FakeSocket.last.accept();
    const seen: boolean[] = [];
    const p = client.subscribe("notes", (e) => void seen.push(e.echo));
    const frame = answer(FakeSocket.last);
    await p;
    FakeSocket.last.receive({ ...event(frame.id, "created", "1", { id: 1 }), echo: true });
    FakeSocket.last.receive(event(frame.id, "updated", "1", { id: 1 }));
    FakeSocket.last.receive({ ...event(frame.id, "deleted", "1"), echo: "yes" });
    expect(seen).toEqual([true, false, false]);
  });
});

describe("restHeaders", () => {
  it("names the window once welcomed", () => {
    const client = makeClient();
    expect(client.restHeaders()).toEqual({});
    FakeSocket.last.accept({ window_id: "win-9" });
    expect(client.restHeaders()).toEqual({ "X-Floorchannels-Window": "win-9" });
  });
});
