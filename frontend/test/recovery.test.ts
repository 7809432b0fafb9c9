import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Client } from "../src/client";
import { Recovery, compareSeq } from "../src/recovery";
import { FakeSocket } from "./fake-socket";

let client: Client;

function events(type: string): any[] {
  const seen: any[] = [];
  client.addEventListener(type, (e) => seen.push((e as CustomEvent).detail));
  return seen;
}

/** A history-carrying signal frame. */
function signal(id: string, g: string, seq: string, e: string | number = "E1", name = "s"): object {
  return { type: "signal", signal: name, kwargs: {}, id, g, seq, e };
}

/** Drop the socket and open (not welcome) the next one; returns it. */
function reopen(): FakeSocket {
  FakeSocket.last.serverClose(1006);
  vi.advanceTimersByTime(500);
  const ws = FakeSocket.last;
  ws.open();
  return ws;
}

beforeEach(() => {
  FakeSocket.reset();
  vi.useFakeTimers();
  client = new Client({ url: "ws://example.test/ws/", windowKey: "k1", WebSocket: FakeSocket, random: () => 0 });
});
afterEach(() => {
  client.close();
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("compareSeq", () => {
  it("orders by the number before the dash, then the number after", () => {
    expect(compareSeq("10-0", "9-5")).toBeGreaterThan(0);
    expect(compareSeq("9-5", "10-0")).toBeLessThan(0);
    expect(compareSeq("1732200000000-10", "1732200000000-9")).toBeGreaterThan(0);
    expect(compareSeq("1732200000000-3", "1732200000000-3")).toBe(0);
    expect(compareSeq("1732200000001-0", "1732200000000-99")).toBeGreaterThan(0);
  });

  it("is exact beyond 2^53 and ignores leading zeros", () => {
    expect(compareSeq("1-18446744073709551615", "1-18446744073709551614")).toBeGreaterThan(0);
    expect(compareSeq("007-01", "7-1")).toBe(0);
    expect(compareSeq("5", "5-0")).toBe(0);
  });

  it("throws on a string that is not a seq", () => {
    expect(() => compareSeq("x-1", "1-1")).toThrow(TypeError);
    expect(() => compareSeq("1-1", "1-")).toThrow(TypeError);
  });
});

describe("Recovery", () => {
  it("keeps the greatest seq per group, whatever order the frames come in", () => {
    const r = new Recovery();
    r.signal({ id: "a", g: "G1", seq: "9-5", e: "E" });
    r.signal({ id: "b", g: "G1", seq: "10-0", e: "E" });
    r.signal({ id: "c", g: "G1", seq: "9-9", e: "E" });
    r.signal({ id: "d", g: "G2", seq: "3-0", e: "E" });
    expect(r.resume()).toEqual({ e: "E", seqs: { G1: "10-0", G2: "3-0" } });
  });

  it("forgets every seq when the epoch changes", () => {
    const r = new Recovery();
    r.signal({ id: "a", g: "G1", seq: "100-0", e: "E1" });
    r.signal({ id: "b", g: "G2", seq: "100-0", e: "E1" });
    r.signal({ id: "c", g: "G1", seq: "1-0", e: "E2" });
    expect(r.resume()).toEqual({ e: "E2", seqs: { G1: "1-0" } });
  });

  it("ignores frames without history, or with a malformed seq", () => {
    const r = new Recovery();
    r.signal({ id: "a" });
    r.signal({ id: "b", g: "G1", seq: "1-0" }); // no epoch
    r.signal({ id: "c", g: "G1", seq: "nope", e: "E" });
    expect(r.resume()).toBeUndefined();
  });

  it("remembers a bounded number of ids, oldest out first", () => {
    const r = new Recovery(3);
    expect(["1", "2", "3"].map((id) => r.signal({ id }))).toEqual([true, true, true]);
    expect(r.signal({ id: "2" })).toBe(false);
    expect(r.signal({ id: "4" })).toBe(true); // "1" is forgotten
    expect(r.signal({ id: "1" })).toBe(true);
    expect(r.signal({ id: "3" })).toBe(false);
    expect(r.signal({})).toBe(true); // no id: never a duplicate
    expect(r.signal({})).toBe(true);
  });
});

describe("resume in hello", () => {
  it("is not sent on the first connect of the page", () => {
    const ws = FakeSocket.last;
    ws.open();
    expect(ws.sent).toEqual([{ type: "hello", window_key: "k1", protocol: 2 }]);
  });

  it("is not sent on a reconnect when there is nothing to resume", () => {
    FakeSocket.last.accept();
    FakeSocket.last.receive({ type: "signal", signal: "s", kwargs: {}, id: "m1" }); // no history
    expect(reopen().sent[0]).toEqual({ type: "hello", window_key: "k1", protocol: 2 });
  });

  it("carries the epoch and the last seq of each group on every reconnect", () => {
    let ws = FakeSocket.last;
    ws.accept();
    ws.receive(signal("m1", "aliasWINDOW1", "1732200000000-3"));
    ws.receive(signal("m2", "aliasUSER0001", "9-5"));
    ws.receive(signal("m3", "aliasUSER0001", "10-0"));
    ws = reopen();
    expect(ws.sent[0]).toEqual({
      type: "hello",
      window_key: "k1",
      protocol: 2,
      resume: { e: "E1", seqs: { aliasWINDOW1: "1732200000000-3", aliasUSER0001: "10-0" } },
    });
    // A replayed frame moves the seq on for the next reconnect.
    ws.welcome();
    ws.receive(signal("m4", "aliasWINDOW1", "1732200000000-4"));
    ws = reopen();
    expect(ws.sent[0].resume.seqs).toEqual({ aliasWINDOW1: "1732200000000-4", aliasUSER0001: "10-0" });
  });

  it("is sent after a failed attempt too, and with a refreshed key (same window)", () => {
    let ws = FakeSocket.last;
    ws.accept();
    ws.receive(signal("m1", "G1", "5-0", 7));
    ws.receive({ type: "refresh", window_key: "k2", key_expires: 123 });
    ws = reopen();
    expect(ws.sent[0]).toEqual({ type: "hello", window_key: "k2", protocol: 2, resume: { e: 7, seqs: { G1: "5-0" } } });
    ws = reopen(); // no welcome on the previous attempt
    expect(ws.sent[0].resume).toEqual({ e: 7, seqs: { G1: "5-0" } });
  });

  it("starts over after an epoch change", () => {
    let ws = FakeSocket.last;
    ws.accept();
    ws.receive(signal("m1", "G1", "50-0", "E1"));
    ws.receive(signal("m2", "G2", "60-0", "E1"));
    ws.receive(signal("m3", "G2", "1-0", "E2"));
    ws = reopen();
    expect(ws.sent[0].resume).toEqual({ e: "E2", seqs: { G2: "1-0" } });
  });
});

describe("deduplication", () => {
  it("runs handlers once per id, even when a replay offers it again through another group", () => {
    const h = vi.fn();
    client.on("chat.message", h);
    let ws = FakeSocket.last;
    ws.accept();
    ws.receive(signal("m1", "GUSER", "1-0", "E1", "chat.message"));
    ws = reopen();
    ws.welcome();
    ws.receive(signal("m1", "GBROADCAST", "7-0", "E1", "chat.message")); // replayed through another group
    ws.receive(signal("m2", "GBROADCAST", "8-0", "E1", "chat.message"));
    expect(h.mock.calls.map((c) => c[1].id)).toEqual(["m1", "m2"]);
    // The duplicate still counts as seen for its group.
    expect(reopen().sent[0].resume.seqs).toEqual({ GUSER: "1-0", GBROADCAST: "8-0" });
  });

  it("forgets ids beyond the last 1,000", () => {
    const h = vi.fn();
    client.on("s", h);
    const ws = FakeSocket.last;
    ws.accept();
    for (let i = 0; i <= 1000; i++) ws.receive({ type: "signal", signal: "s", kwargs: {}, id: `m${i}` });
    ws.receive({ type: "signal", signal: "s", kwargs: {}, id: "m1000" });
    ws.receive({ type: "signal", signal: "s", kwargs: {}, id: "m1" });
    expect(h).toHaveBeenCalledTimes(1001);
    ws.receive({ type: "signal", signal: "s", kwargs: {}, id: "m0" }); // the oldest, forgotten
    expect(h).toHaveBeenCalledTimes(1002);
  });
});

describe("resync", () => {
  it("is dispatched as a resync event with the reason, group, since and at", () => {
    const seen = events("resync");
    const ws = FakeSocket.last;
    ws.accept();
    ws.receive({ type: "resync", reason: "layer_outage", since: 100.5, at: 130.25 });
    ws.receive({ type: "resync", reason: "history", g: "G1" });
    ws.receive({ type: "resync", reason: "epoch", g: "G2" });
    expect(seen).toEqual([
      { reason: "layer_outage", group: null, since: 100.5, at: 130.25 },
      { reason: "history", group: "G1" },
      { reason: "epoch", group: "G2" },
    ]);
  });

  it("drops the seq of that group, or moves it to where the server says the group stands", () => {
    let ws = FakeSocket.last;
    ws.accept();
    ws.receive(signal("m1", "G1", "1-0"));
    ws.receive(signal("m2", "G2", "2-0"));
    ws.receive({ type: "resync", reason: "history", g: "G1" });
    ws = reopen();
    expect(ws.sent[0].resume).toEqual({ e: "E1", seqs: { G2: "2-0" } });
    ws.welcome();
    ws.receive({ type: "resync", reason: "history", g: "G2", seq: "40-0", e: "E1" });
    ws = reopen();
    expect(ws.sent[0].resume).toEqual({ e: "E1", seqs: { G2: "40-0" } });
  });

  it("keeps the seqs after a layer outage: the history may still fill the gap", () => {
    const ws = FakeSocket.last;
    ws.accept();
    ws.receive(signal("m1", "G1", "1-0"));
    ws.receive({ type: "resync", reason: "layer_outage", since: 1, at: 2 });
    expect(reopen().sent[0].resume).toEqual({ e: "E1", seqs: { G1: "1-0" } });
  });

  it("starts from the welcome's positions for groups it has seen nothing of", () => {
    let ws = FakeSocket.last;
    ws.open();
    ws.welcome({ e: "E1", seqs: { G1: "5-0", G2: "0-0" } });
    ws.receive(signal("m6", "G1", "6-0"));
    ws = reopen();
    expect(ws.sent[0].resume).toEqual({ e: "E1", seqs: { G1: "6-0", G2: "0-0" } });
    // The welcome of a resumed connection never moves a group past what was seen.
    ws.open();
    ws.welcome({ e: "E1", seqs: { G1: "9-0", G2: "3-0", G3: "1-0" } });
    expect(reopen().sent[0].resume).toEqual({ e: "E1", seqs: { G1: "6-0", G2: "0-0", G3: "1-0" } });
  });

  it("forgets the groups a welcome no longer lists (a new window left the old one's group)", () => {
    let ws = FakeSocket.last;
    ws.open();
    ws.welcome({ e: "E1", seqs: { WINDOW1: "0-0", USER: "4-0" } });
    ws.receive(signal("m1", "WINDOW1", "1-0"));
    ws.receive(signal("m5", "USER", "5-0"));
    ws = reopen();
    expect(ws.sent[0].resume).toEqual({ e: "E1", seqs: { WINDOW1: "1-0", USER: "5-0" } });
    ws.open();
    ws.welcome({ e: "E1", seqs: { WINDOW2: "0-0", USER: "7-0" } });
    expect(reopen().sent[0].resume).toEqual({ e: "E1", seqs: { USER: "5-0", WINDOW2: "0-0" } });
  });

  it("takes every position from a welcome with a new epoch", () => {
    let ws = FakeSocket.last;
    ws.accept();
    ws.receive(signal("m1", "G1", "7-0"));
    ws = reopen();
    ws.open();
    ws.welcome({ e: "E2", seqs: { G1: "2-0" } });
    expect(reopen().sent[0].resume).toEqual({ e: "E2", seqs: { G1: "2-0" } });
  });

  it("drops the seq before listeners run", () => {
    const ws = FakeSocket.last;
    ws.accept();
    ws.receive(signal("m1", "G1", "1-0"));
    client.addEventListener("resync", () => FakeSocket.last.serverClose(1006));
    ws.receive({ type: "resync", reason: "epoch", g: "G1" });
    vi.advanceTimersByTime(500);
    FakeSocket.last.open();
    expect(FakeSocket.last.sent[0].resume).toBeUndefined();
  });
});

describe("gaps in a group's seqs", () => {
  it("keeps the last contiguous seq, and moves on when late frames close the gap", () => {
    const r = new Recovery();
    r.positions("E", { G: "4-0" });
    r.signal({ id: "a", g: "G", seq: "5-0", e: "E" });
    r.signal({ id: "c", g: "G", seq: "7-0", e: "E" }); // 6 is missing: a gap opens
    r.signal({ id: "d", g: "G", seq: "8-0", e: "E" });
    expect(r.resume()).toEqual({ e: "E", seqs: { G: "5-0" } });
    expect(r.oldestGap()).toBeTypeOf("number");
    expect(r.signal({ id: "b", g: "G", seq: "6-0", e: "E" })).toBe(true); // late, still handled
    expect(r.resume()).toEqual({ e: "E", seqs: { G: "8-0" } });
    expect(r.oldestGap()).toBeUndefined();
  });

  it("counts a message's positions in its other groups (`o`) for groups it knows only", () => {
    const r = new Recovery();
    r.positions("E", { T: "1-0", B: "10-0" });
    r.signal({ id: "m", g: "T", seq: "2-0", e: "E", o: { B: "11-0", X: "99-0" } });
    r.signal({ id: "n", g: "B", seq: "12-0", e: "E" }); // no gap: 11 came with m
    expect(r.resume()).toEqual({ e: "E", seqs: { T: "2-0", B: "12-0" } });
    expect(r.oldestGap()).toBeUndefined();
  });

  it("orders counters exactly beyond 2^53", () => {
    const r = new Recovery();
    r.positions("E", { G: "9007199254740993-0" });
    r.signal({ id: "a", g: "G", seq: "9007199254740994-0", e: "E" });
    expect(r.oldestGap()).toBeUndefined();
    r.signal({ id: "b", g: "G", seq: "9007199254740996-0", e: "E" });
    expect(r.resume()!.seqs.G).toBe("9007199254740994-0");
  });

  it("gives a gap that a reconnect did not fill up: the group moves on and it is reported", () => {
    let now = 1000;
    const r = new Recovery(1000, () => now);
    r.positions("E", { G: "1-0" });
    r.signal({ id: "c", g: "G", seq: "3-0", e: "E" });
    now = 2500;
    expect(r.overdue(now - 2000)).toEqual({ reconnect: false, abandoned: [] }); // not yet
    now = 3100;
    expect(r.overdue(now - 2000)).toEqual({ reconnect: true, abandoned: [] });
    r.positions("E", { G: "3-0" }); // the reconnect's welcome: the gap gets a new deadline
    now = 5200;
    expect(r.overdue(now - 2000)).toEqual({ reconnect: false, abandoned: ["G"] });
    expect(r.resume()).toEqual({ e: "E", seqs: { G: "3-0" } });
  });

  it("forgets gaps with the epoch, and a resync closes the group's gap", () => {
    const r = new Recovery();
    r.positions("E", { G: "1-0", H: "1-0" });
    r.signal({ id: "a", g: "G", seq: "3-0", e: "E" });
    r.resynced("G", "9-0", "E");
    expect(r.oldestGap()).toBeUndefined();
    r.signal({ id: "b", g: "H", seq: "5-0", e: "E" });
    r.signal({ id: "c", g: "H", seq: "1-0", e: "E2" });
    expect(r.oldestGap()).toBeUndefined();
    expect(r.resume()).toEqual({ e: "E2", seqs: { H: "1-0" } });
  });

  it("keeps the greatest seq for seqs that are not N-0 (no contiguity to check)", () => {
    const r = new Recovery();
    r.positions("E", { G: "1732200000000-3" });
    r.signal({ id: "a", g: "G", seq: "1732200000000-9", e: "E" });
    expect(r.oldestGap()).toBeUndefined();
    expect(r.resume()!.seqs.G).toBe("1732200000000-9");
  });
});

describe("the client on a gap", () => {
  function welcomed(seqs: Record<string, string> = { G: "1-0", B: "5-0" }): FakeSocket {
    const ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs });
    return ws;
  }

  it("delivers frames past a gap at once, and late ones too, once each", () => {
    const h = vi.fn();
    client.on("s", h);
    const ws = welcomed();
    ws.receive(signal("m3", "G", "3-0"));
    ws.receive(signal("m2", "G", "2-0"));
    ws.receive(signal("m3", "G", "3-0"));
    expect(h.mock.calls.map((c) => c[1].id)).toEqual(["m3", "m2"]);
    vi.advanceTimersByTime(5000);
    expect(FakeSocket.instances).toHaveLength(1); // closed in time: no reconnect
  });

  it("reconnects after gapTimeout and resumes from the last contiguous seq", () => {
    const disconnects = events("disconnect");
    const ws = welcomed();
    ws.receive(signal("m2", "G", "2-0"));
    ws.receive(signal("m4", "G", "4-0")); // 3 is missing
    ws.receive(signal("m6", "B", "6-0"));
    vi.advanceTimersByTime(1999);
    expect(FakeSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(ws.closedWith).not.toBeNull();
    expect(disconnects).toHaveLength(1);
    vi.advanceTimersByTime(500);
    const next = FakeSocket.last;
    expect(next).not.toBe(ws);
    next.open();
    expect(next.sent[0].resume).toEqual({ e: "E1", seqs: { G: "2-0", B: "6-0" } });
    // The server replays 3 and 4; the gap is closed and nothing runs twice.
    const h = vi.fn();
    client.on("s", h);
    next.welcome({ e: "E1", seqs: { G: "4-0", B: "6-0" } });
    next.receive(signal("m3", "G", "3-0"));
    next.receive(signal("m4", "G", "4-0"));
    expect(h.mock.calls.map((c) => c[1].id)).toEqual(["m3"]);
    vi.advanceTimersByTime(10_000);
    expect(FakeSocket.last).toBe(next);
  });

  it("honours the gapTimeout option", () => {
    client.close();
    FakeSocket.reset();
    client = new Client({ url: "ws://x/", windowKey: "k1", WebSocket: FakeSocket, random: () => 0, gapTimeout: 300 });
    const ws = welcomed();
    ws.receive(signal("m3", "G", "3-0"));
    vi.advanceTimersByTime(299);
    expect(ws.closedWith).toBeNull();
    vi.advanceTimersByTime(1);
    expect(ws.closedWith).not.toBeNull();
  });

  it("reports a gap the reconnect did not fill as a resync (reason gap) and moves on", () => {
    const seen = events("resync");
    let ws = welcomed();
    ws.receive(signal("m3", "G", "3-0"));
    vi.advanceTimersByTime(2000);
    vi.advanceTimersByTime(500);
    ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { G: "3-0", B: "5-0" } }); // the server replays nothing
    vi.advanceTimersByTime(2000);
    expect(seen).toEqual([{ reason: "gap", group: "G" }]);
    expect(FakeSocket.last).toBe(ws); // no reconnect loop
    ws.receive(signal("m4", "G", "4-0"));
    vi.advanceTimersByTime(10_000);
    expect(FakeSocket.last).toBe(ws);
    expect(reopen().sent[0].resume.seqs.G).toBe("4-0");
  });

  it("a server resync closes the gap without a reconnect", () => {
    const ws = welcomed();
    ws.receive(signal("m3", "G", "3-0"));
    ws.receive({ type: "resync", reason: "history", g: "G", seq: "3-0", e: "E1" });
    vi.advanceTimersByTime(10_000);
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it("passes an overloaded resync's resource on", () => {
    const seen = events("resync");
    welcomed();
    FakeSocket.last.receive({ type: "resync", reason: "overloaded", resource: "notes" });
    expect(seen).toEqual([{ reason: "overloaded", group: null, resource: "notes" }]);
  });
});
