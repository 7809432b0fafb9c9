import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Client } from "../src/client";
import { liveList } from "../src/live";
import type { LiveListOptions } from "../src/live";
import { FakeSocket } from "./fake-socket";

interface Note {
  id: number;
  text: string;
}

let client: Client;

/** Let pending promise callbacks run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** A promise with its resolve/reject outside, to control when a fetch answers. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

function lastSubscribe(ws = FakeSocket.last): any {
  return ws.sentOfType("subscribe").at(-1);
}

/** Accept the last subscribe frame; returns its id. */
function accept(ws = FakeSocket.last): number {
  const frame = lastSubscribe(ws);
  ws.receive({ type: "reply", id: frame.id, ok: true, result: null });
  return frame.id;
}

function send(sub: number, action: string, pk: string | number, data?: object, ws = FakeSocket.last): void {
  ws.receive({ type: "event", subscription: sub, resource: "notes", action, pk: String(pk), ...(data ? { data } : {}), id: `m${Math.random()}` });
}

/** A live list on an open client, subscribed; returns it with the subscription's frame id. */
async function subscribed(options: LiveListOptions<Note> = {}) {
  const list = liveList<Note>(client, "notes", options);
  const sub = accept();
  await list.ready;
  return { list, sub };
}

function reconnect(): FakeSocket {
  FakeSocket.last.serverClose(1006);
  vi.advanceTimersByTime(500);
  const ws = FakeSocket.last;
  ws.accept();
  return ws;
}

const texts = (items: readonly Note[]) => items.map((n) => `${n.id}:${n.text}`);

beforeEach(() => {
  FakeSocket.reset();
  vi.useFakeTimers();
  client = new Client({ url: "ws://example.test/ws/", windowKey: "k", WebSocket: FakeSocket, random: () => 0 });
  FakeSocket.last.accept();
});
afterEach(() => {
  client.close();
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("liveList", () => {
  it("subscribes to the resource (or one pk) and resolves ready once accepted", async () => {
    const list = liveList(client, "notes", { pk: 4 });
    expect(lastSubscribe()).toEqual({ type: "subscribe", id: expect.anything(), resource: "notes", pk: 4 });
    expect(list.subscription).toBeUndefined();
    accept();
    await expect(list.ready).resolves.toBeUndefined();
    expect(list.subscription?.active).toBe(true);
  });

  it("created inserts, updated replaces in place, deleted removes; pks match numeric ids", async () => {
    const onChange = vi.fn();
    const { list, sub } = await subscribed({ items: [{ id: 1, text: "a" }, { id: 2, text: "b" }], onChange });
    send(sub, "created", 3, { id: 3, text: "c" });
    expect(texts(list.items)).toEqual(["1:a", "2:b", "3:c"]);
    send(sub, "updated", 1, { id: 1, text: "A" });
    expect(texts(list.items)).toEqual(["1:A", "2:b", "3:c"]);
    send(sub, "deleted", 2);
    expect(texts(list.items)).toEqual(["1:A", "3:c"]);
    expect(onChange).toHaveBeenCalledTimes(3);
    const [items, event] = onChange.mock.calls[2];
    expect(texts(items)).toEqual(["1:A", "3:c"]);
    expect(event).toMatchObject({ action: "deleted", pk: "2", resource: "notes" });
  });

  it("created replaces an item it already has; updated inserts one it lacks", async () => {
    const { list, sub } = await subscribed({ items: [{ id: 1, text: "a" }] });
    send(sub, "created", 1, { id: 1, text: "again" });
    send(sub, "updated", 5, { id: 5, text: "shared with me" });
    send(sub, "deleted", 99); // unknown: nothing to do
    expect(texts(list.items)).toEqual(["1:again", "5:shared with me"]);
  });

  it("hands out copies: changing them does not change the list", async () => {
    const initial = [{ id: 1, text: "a" }];
    const { list } = await subscribed({ items: initial });
    list.items.push({ id: 2, text: "b" });
    initial.push({ id: 3, text: "c" });
    expect(texts(list.items)).toEqual(["1:a"]);
  });

  it("uses another key field when told", async () => {
    const { list, sub } = await subscribed({ items: [{ slug: "x", n: 1 } as any], key: "slug" });
    send(sub, "updated", "x", { slug: "x", n: 2 });
    expect(list.items).toEqual([{ slug: "x", n: 2 }]);
  });

  it("keeps the sort order on every change", async () => {
    const sort = (a: Note, b: Note) => a.text.localeCompare(b.text);
    const { list, sub } = await subscribed({ items: [{ id: 1, text: "m" }, { id: 2, text: "c" }], sort });
    expect(texts(list.items)).toEqual(["2:c", "1:m"]);
    send(sub, "created", 3, { id: 3, text: "a" });
    send(sub, "created", 4, { id: 4, text: "z" });
    expect(texts(list.items)).toEqual(["3:a", "2:c", "1:m", "4:z"]);
    send(sub, "updated", 3, { id: 3, text: "n" });
    expect(texts(list.items)).toEqual(["2:c", "1:m", "3:n", "4:z"]);
  });

  it("id-only events: fetch(pk) gives the object; null removes it", async () => {
    const store: Record<string, Note | null> = { "7": { id: 7, text: "seven" } };
    const fetch = vi.fn(async (pk: string) => store[pk] ?? null);
    const onChange = vi.fn();
    const { list, sub } = await subscribed({ items: [{ id: 8, text: "eight" }], fetch, onChange });
    send(sub, "created", 7);
    expect(fetch).toHaveBeenCalledWith("7");
    await flush();
    expect(texts(list.items)).toEqual(["8:eight", "7:seven"]);
    expect(onChange.mock.calls[0][1]).toMatchObject({ action: "created", pk: "7", data: undefined });
    send(sub, "updated", 8); // no longer visible to us over REST
    await flush();
    expect(texts(list.items)).toEqual(["7:seven"]);
    send(sub, "deleted", 7); // deleted never fetches
    expect(fetch).toHaveBeenCalledTimes(2);
    expect(list.items).toEqual([]);
  });

  it("a slow fetch never overwrites a newer change of the same pk", async () => {
    const slow = deferred<Note | null>();
    const fetch = vi.fn().mockReturnValueOnce(slow.promise);
    const { list, sub } = await subscribed({ fetch });
    send(sub, "updated", 7); // fetch starts
    send(sub, "deleted", 7);
    slow.resolve({ id: 7, text: "stale" });
    await flush();
    expect(list.items).toEqual([]);
  });

  it("without fetch, an event without data changes nothing and warns", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const { list, sub } = await subscribed({ items: [{ id: 1, text: "a" }] });
    send(sub, "updated", 1);
    expect(texts(list.items)).toEqual(["1:a"]);
    expect(warn).toHaveBeenCalled();
  });

  it("loads itself with refetch when no items are given; events wait for the load", async () => {
    const load = deferred<Note[]>();
    const refetch = vi.fn(() => load.promise);
    const onChange = vi.fn();
    const list = liveList<Note>(client, "notes", { refetch, onChange });
    expect(refetch).not.toHaveBeenCalled(); // not before the subscription is in force
    const sub = accept();
    await flush();
    expect(refetch).toHaveBeenCalledTimes(1);
    send(sub, "created", 3, { id: 3, text: "c" }); // came after the snapshot was taken
    let ready = false;
    void list.ready.then(() => (ready = true));
    await flush();
    expect(ready).toBe(false);
    expect(list.items).toEqual([]);
    load.resolve([{ id: 1, text: "a" }, { id: 3, text: "old c" }]);
    await flush();
    expect(ready).toBe(true);
    expect(texts(list.items)).toEqual(["1:a", "3:c"]);
    expect(onChange.mock.calls.map((c) => c[1]?.action ?? null)).toEqual([null, "created"]);
  });

  it("after a reconnect, refetch replaces the items, and events during it apply on top", async () => {
    const refetch = vi.fn();
    const onChange = vi.fn();
    const { list } = await subscribed({ items: [{ id: 1, text: "a" }, { id: 2, text: "b" }], refetch, onChange });
    expect(refetch).not.toHaveBeenCalled(); // it had items

    const ws = reconnect();
    const reload = deferred<Note[]>();
    refetch.mockReturnValueOnce(reload.promise);
    const sub = accept(ws);
    expect(refetch).toHaveBeenCalledTimes(1);
    send(sub, "deleted", 4, undefined, ws);
    send(sub, "created", 5, { id: 5, text: "e" }, ws);
    expect(texts(list.items)).toEqual(["1:a", "2:b"]); // held until the reload is in
    reload.resolve([{ id: 2, text: "B" }, { id: 3, text: "c" }, { id: 4, text: "d" }]);
    await flush();
    expect(texts(list.items)).toEqual(["2:B", "3:c", "5:e"]);
    expect(onChange.mock.calls.map((c) => c[1]?.action ?? null)).toEqual([null, "deleted", "created"]);
  });

  it("a failed refetch is logged, and the held events still apply", async () => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const refetch = vi.fn();
    const { list } = await subscribed({ items: [{ id: 1, text: "a" }], refetch });
    const ws = reconnect();
    const reload = deferred<Note[]>();
    refetch.mockReturnValueOnce(reload.promise);
    const sub = accept(ws);
    send(sub, "created", 2, { id: 2, text: "b" }, ws);
    reload.reject(new Error("503"));
    await flush();
    expect(log).toHaveBeenCalled();
    expect(texts(list.items)).toEqual(["1:a", "2:b"]);
  });

  it("after a reconnect without refetch, fetch refreshes each item it holds (and the followed pk)", async () => {
    const fetch = vi.fn(async (pk: string) => (pk === "1" ? null : { id: Number(pk), text: `fresh ${pk}` }));
    const { list } = await subscribed({ pk: 2, fetch, items: [{ id: 1, text: "a" }] });
    const ws = reconnect();
    accept(ws);
    await flush();
    expect(fetch.mock.calls.map((c) => c[0]).sort()).toEqual(["1", "2"]);
    expect(texts(list.items)).toEqual(["2:fresh 2"]);
  });

  it("any resync reloads with refetch, and events during it apply on top", async () => {
    const refetch = vi.fn();
    const onChange = vi.fn();
    const { list, sub } = await subscribed({ items: [{ id: 1, text: "a" }], refetch, onChange });
    const reload = deferred<Note[]>();
    refetch.mockReturnValueOnce(reload.promise);
    FakeSocket.last.receive({ type: "resync", reason: "history", g: "G1" });
    expect(refetch).toHaveBeenCalledTimes(1);
    send(sub, "created", 3, { id: 3, text: "c" });
    expect(texts(list.items)).toEqual(["1:a"]); // held until the reload is in
    reload.resolve([{ id: 2, text: "b" }]);
    await flush();
    expect(texts(list.items)).toEqual(["2:b", "3:c"]);
    expect(onChange.mock.calls.map((c) => c[1]?.action ?? null)).toEqual([null, "created"]);

    refetch.mockResolvedValueOnce([{ id: 4, text: "d" }]);
    FakeSocket.last.receive({ type: "resync", reason: "layer_outage", since: 1, at: 2 }); // every group
    await flush();
    expect(refetch).toHaveBeenCalledTimes(2);
    expect(texts(list.items)).toEqual(["4:d"]);
  });

  it("a resync without refetch re-fetches each held item; a closed list ignores it", async () => {
    const fetch = vi.fn(async (pk: string) => ({ id: Number(pk), text: `fresh ${pk}` }));
    const { list } = await subscribed({ fetch, items: [{ id: 1, text: "a" }, { id: 2, text: "b" }] });
    FakeSocket.last.receive({ type: "resync", reason: "epoch", g: "G1" });
    await flush();
    expect(fetch.mock.calls.map((c) => c[0]).sort()).toEqual(["1", "2"]);
    expect(texts(list.items)).toEqual(["1:fresh 1", "2:fresh 2"]);
    list.close();
    FakeSocket.last.receive({ type: "resync", reason: "history", g: "G1" });
    await flush();
    expect(fetch).toHaveBeenCalledTimes(2);
  });

  it("ready rejects with the subscription's error code", async () => {
    const list = liveList(client, "nope");
    const frame = lastSubscribe();
    FakeSocket.last.receive({ type: "reply", id: frame.id, ok: false, error: { code: "unknown_resource", message: "?" } });
    await expect(list.ready).rejects.toMatchObject({ code: "unknown_resource" });
  });

  it("close() unsubscribes and stops changes, even before the subscription was accepted", async () => {
    const onChange = vi.fn();
    const { list, sub } = await subscribed({ items: [], onChange });
    list.close();
    expect(FakeSocket.last.sentOfType("unsubscribe")[0].subscription).toBe(sub);
    send(sub, "created", 1, { id: 1, text: "a" });
    expect(list.items).toEqual([]);
    expect(onChange).not.toHaveBeenCalled();

    const early = liveList(client, "notes");
    const frame = lastSubscribe();
    early.close();
    expect(FakeSocket.last.sentOfType("unsubscribe")[1].subscription).toBe(frame.id);
    await expect(early.ready).rejects.toMatchObject({ code: "aborted" });
    expect(client.subscriptionCount).toBe(0);
  });
});

function sendFrame(sub: number, frame: object, ws = FakeSocket.last): void {
  ws.receive({ type: "event", subscription: sub, resource: "notes", id: `m${Math.random()}`, ...frame });
}

/** A live list that loads itself with `refetch` answering `first`; subscribed and loaded. */
async function loaded(first: unknown, options: LiveListOptions<Note> = {}) {
  const list = liveList<Note>(client, "notes", { refetch: async () => first as Note[], ...options });
  const sub = accept();
  await list.ready;
  return { list, sub };
}

describe("liveList params and kwargs", () => {
  it("go into the subscribe frame, and again into every re-subscribe", async () => {
    const list = liveList(client, "tasks", { params: { project: 3, done: [true, false] }, kwargs: { project_pk: 3 } });
    expect(lastSubscribe()).toEqual({
      type: "subscribe",
      id: expect.anything(),
      resource: "tasks",
      params: { project: 3, done: [true, false] },
      kwargs: { project_pk: 3 },
    });
    accept();
    await list.ready;
    const ws = reconnect();
    expect(lastSubscribe(ws)).toMatchObject({ params: { project: 3, done: [true, false] }, kwargs: { project_pk: 3 } });
  });
});

describe("liveList with a paginated endpoint", () => {
  const page1 = {
    count: 5,
    next: "http://t.test/api/notes/?page=2",
    previous: null,
    results: [{ id: 1, text: "a" }, { id: 2, text: "b" }],
  };

  it("a page-number page: the items are its results; count, next and previous are kept", async () => {
    const { list } = await loaded(page1);
    expect(texts(list.items)).toEqual(["1:a", "2:b"]);
    expect(list.count).toBe(5);
    expect(list.next).toBe("http://t.test/api/notes/?page=2");
    expect(list.previous).toBeNull();
  });

  it("limit/offset and cursor pages work the same (a cursor page has no count)", async () => {
    const offset = await loaded({ count: 3, next: "/api/notes/?limit=1&offset=1", previous: null, results: [{ id: 7, text: "g" }] });
    expect(texts(offset.list.items)).toEqual(["7:g"]);
    expect(offset.list.count).toBe(3);
    const cursor = await loaded({ next: "/api/notes/?cursor=cD0y", previous: null, results: [{ id: 8, text: "h" }] });
    expect(texts(cursor.list.items)).toEqual(["8:h"]);
    expect(cursor.list.count).toBeUndefined();
    expect(cursor.list.next).toBe("/api/notes/?cursor=cD0y");
  });

  it("a plain array leaves count undefined and next/previous null", async () => {
    const { list } = await loaded([{ id: 1, text: "a" }]);
    expect(list.count).toBeUndefined();
    expect(list.next).toBeNull();
    expect(list.previous).toBeNull();
  });

  it("created inserts and counts; deleted removes and counts; updated replaces in place", async () => {
    const { list, sub } = await loaded(page1);
    send(sub, "created", 9, { id: 9, text: "new" });
    expect(texts(list.items)).toEqual(["1:a", "2:b", "9:new"]);
    expect(list.count).toBe(6);
    send(sub, "updated", 1, { id: 1, text: "A" });
    send(sub, "deleted", 2);
    expect(texts(list.items)).toEqual(["1:A", "9:new"]);
    expect(list.count).toBe(5);
    send(sub, "deleted", 42); // not in the list: nothing to count
    expect(list.count).toBe(5);
  });

  it("an update of an object on a page not loaded yet waits for that page; once all is loaded it inserts", async () => {
    const fetchPage = vi.fn(async () => ({ count: 3, next: null, previous: "p1", results: [{ id: 3, text: "c" }] }));
    const { list, sub } = await loaded({ ...page1, count: 3 }, { fetchPage });
    send(sub, "updated", 3, { id: 3, text: "c2" });
    expect(texts(list.items)).toEqual(["1:a", "2:b"]);
    await expect(list.loadMore()).resolves.toBe(true);
    expect(texts(list.items)).toEqual(["1:a", "2:b", "3:c"]);
    send(sub, "updated", 4, { id: 4, text: "became visible" });
    expect(texts(list.items)).toEqual(["1:a", "2:b", "3:c", "4:became visible"]);
  });

  it("loadMore() follows next with fetchPage, appends, and applies events that arrive meanwhile on top", async () => {
    const page = deferred<unknown>();
    const fetchPage = vi.fn(() => page.promise as Promise<any>);
    const onChange = vi.fn();
    const { list, sub } = await loaded(page1, { fetchPage, onChange });
    const more = list.loadMore();
    expect(list.loadMore()).toBe(more); // one at a time
    expect(fetchPage).toHaveBeenCalledTimes(1);
    expect(fetchPage).toHaveBeenCalledWith("http://t.test/api/notes/?page=2");
    send(sub, "deleted", 4); // on page 2, deleted while it loads
    send(sub, "created", 6, { id: 6, text: "f" });
    expect(texts(list.items)).toEqual(["1:a", "2:b"]);
    page.resolve({ count: 5, next: null, previous: "p1", results: [{ id: 3, text: "c" }, { id: 4, text: "d" }, { id: 2, text: "b again" }] });
    await expect(more).resolves.toBe(true);
    // Upserted by pk (2 shifted onto page 2 is not doubled), then the held events.
    expect(texts(list.items)).toEqual(["1:a", "2:b again", "3:c", "6:f"]);
    expect(list.next).toBeNull();
    expect(list.count).toBe(5);
    await expect(list.loadMore()).resolves.toBe(false); // nothing more
    expect(fetchPage).toHaveBeenCalledTimes(1);
    expect(onChange.mock.calls.map((c) => c[1]?.action ?? null)).toEqual([null, null, "deleted", "created"]);
  });

  it("loadMore() without fetchPage rejects with a TypeError; a reload meanwhile drops the page", async () => {
    const bare = await loaded(page1);
    await expect(bare.list.loadMore()).rejects.toThrow(/needs the fetchPage option/);

    const page = deferred<unknown>();
    const reload = deferred<unknown>();
    const refetch = vi.fn().mockResolvedValueOnce(page1).mockReturnValueOnce(reload.promise);
    const list = liveList<Note>(client, "notes", { refetch, fetchPage: () => page.promise as Promise<any> });
    accept();
    await list.ready;
    const more = list.loadMore();
    const ws = reconnect();
    const sub = accept(ws);
    send(sub, "created", 9, { id: 9, text: "i" }, ws);
    page.resolve({ count: 5, next: "page3", results: [{ id: 3, text: "c" }] });
    await expect(more).resolves.toBe(false);
    expect(texts(list.items)).toEqual(["1:a", "2:b"]); // still held: the reload runs
    reload.resolve({ ...page1, results: [{ id: 1, text: "a" }] });
    await flush();
    expect(texts(list.items)).toEqual(["1:a", "9:i"]);
    expect(list.next).toBe("http://t.test/api/notes/?page=2");
  });

  it.each([
    [{ count: 2, items: [{ id: 1 }] }, "an object with keys count, items"],
    [{ results: "nope" }, "an object with keys results"],
    [null, "null"],
    ["<html>", "a string"],
    [{}, "an object without keys"],
  ])("refetch answering %j fails loudly: ready rejects with a TypeError naming the shape", async (answer, words) => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const list = liveList<Note>(client, "notes", { refetch: async () => answer as any });
    accept();
    const error = await list.ready.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toContain(`refetch() of the live list "notes" answered ${words}`);
    expect(log).toHaveBeenCalledTimes(1);
    expect(String(log.mock.calls[0][0])).toContain(words);
  });

  it("a wrong shape on a later reload is logged once, and the held events still apply", async () => {
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const refetch = vi.fn().mockResolvedValueOnce([{ id: 1, text: "a" }]).mockResolvedValueOnce({ data: [] });
    const { list } = await loaded(null, { refetch });
    const ws = reconnect();
    const sub = accept(ws);
    send(sub, "created", 2, { id: 2, text: "b" }, ws);
    await flush();
    expect(log).toHaveBeenCalledTimes(1);
    expect(String(log.mock.calls[0][0])).toContain("an object with keys data");
    expect(texts(list.items)).toEqual(["1:a", "2:b"]);
  });
});

describe("liveList and the page's own writes", () => {
  for (const echo of [true, false]) {
    it(`an object the page put() from its POST response and the event of that POST (echo ${echo}) make one item`, async () => {
      const onChange = vi.fn();
      const { list, sub } = await loaded({ count: 1, next: null, results: [{ id: 1, text: "a" }] }, { onChange });
      list.put({ id: 2, text: "mine" });
      expect(texts(list.items)).toEqual(["1:a", "2:mine"]);
      sendFrame(sub, { action: "created", pk: "2", data: { id: 2, text: "mine" }, ...(echo ? { echo: true } : {}) });
      expect(texts(list.items)).toEqual(["1:a", "2:mine"]);
      expect(list.count).toBe(2);
      expect(onChange.mock.calls.at(-1)![1]).toMatchObject({ action: "created", pk: "2", echo });
    });

    it(`the event (echo ${echo}) first and the page's put() after make one item too`, async () => {
      const { list, sub } = await loaded([{ id: 1, text: "a" }]);
      sendFrame(sub, { action: "created", pk: "2", data: { id: 2, text: "mine" }, ...(echo ? { echo: true } : {}) });
      list.put({ id: 2, text: "mine" });
      expect(texts(list.items)).toEqual(["1:a", "2:mine"]);
    });
  }

  it("without put(), the page's own created event inserts it once", async () => {
    const { list, sub } = await loaded([]);
    sendFrame(sub, { action: "created", pk: "5", data: { id: 5, text: "x" }, echo: true });
    sendFrame(sub, { action: "updated", pk: "5", data: { id: 5, text: "y" }, echo: true });
    expect(texts(list.items)).toEqual(["5:y"]);
  });

  it("put() during a reload survives it through the held event of that write", async () => {
    const refetch = vi.fn();
    const { list } = await loaded(null, { refetch: refetch.mockResolvedValueOnce([{ id: 1, text: "a" }]) });
    const ws = reconnect();
    const reload = deferred<Note[]>();
    refetch.mockReturnValueOnce(reload.promise);
    const sub = accept(ws);
    list.put({ id: 2, text: "mine" });
    send(sub, "created", 2, { id: 2, text: "mine" }, ws);
    reload.resolve([{ id: 1, text: "a" }]); // a snapshot from before the POST
    await flush();
    expect(texts(list.items)).toEqual(["1:a", "2:mine"]);
  });
});
