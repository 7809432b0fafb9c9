import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Client } from "../src/client";
import { FloorchannelsError } from "../src/errors";
import { Topics } from "../src/topics";
import type { TopicEventDetail, TopicHost } from "../src/topics";
import { FakeSocket } from "./fake-socket";

/** A host standing in for the client: records what the topics send and report. */
function makeHost(open = true) {
  let id = 0;
  const host = {
    open,
    sent: [] as any[],
    events: [] as TopicEventDetail[],
    positions: [] as Array<[string, unknown, unknown]>,
    forgotten: [] as string[],
    nextId: () => ++id,
    isOpen: () => host.open,
    send: (frame: object) => void host.sent.push(frame),
    entered: (g: string, e: unknown, seq: unknown) => void host.positions.push([g, e, seq]),
    left: (g: string) => void host.forgotten.push(g),
    emitTopic: (detail: TopicEventDetail) => void host.events.push(detail),
  };
  return host satisfies TopicHost;
}

function ok(id: number, result: object): object {
  return { type: "reply", id, ok: true, result };
}

const ROOM = { topic: "room.lobby", g: "aaaaaaaaaaaa", presence: false };

describe("Topics", () => {
  it("joins: sends the frame, resolves with the topic, records its alias and position", async () => {
    const host = makeHost();
    const topics = new Topics(host);
    const joined = topics.join("room.lobby", { presence: true });
    expect(host.sent).toEqual([{ type: "join", id: 1, topic: "room.lobby", presence: true }]);
    expect(topics.reply(ok(1, { ...ROOM, presence: true, e: "ep", seq: "4-0" }))).toBe(true);
    await expect(joined).resolves.toEqual({ ...ROOM, presence: true });
    expect(topics.topicOf("aaaaaaaaaaaa")).toBe("room.lobby");
    expect(topics.topicOf("other")).toBeUndefined();
    expect(host.positions).toEqual([["aaaaaaaaaaaa", "ep", "4-0"]]);
    expect(host.events).toEqual([{ ...ROOM, presence: true, action: "joined", by: "client" }]);
    expect(topics.helloTopics()).toEqual([{ topic: "room.lobby", presence: true }]);
  });

  it("a refused join rejects with the server's code and changes nothing", async () => {
    const host = makeHost();
    const topics = new Topics(host);
    const joined = topics.join("room.secret");
    topics.reply({ type: "reply", id: 1, ok: false, error: { code: "forbidden", message: "no" } });
    const error = await joined.catch((e) => e);
    expect(error).toBeInstanceOf(FloorchannelsError);
    expect([error.code, error.message, error.signal]).toEqual(["forbidden", "no", "join"]);
    expect(topics.list()).toEqual([]);
    expect(topics.helloTopics()).toBeUndefined();
    expect(host.events).toEqual([]);
  });

  it("leaves: forgets the alias and the group's position", async () => {
    const host = makeHost();
    const topics = new Topics(host);
    const joined = topics.join("room.lobby");
    topics.reply(ok(1, ROOM));
    await joined;
    const left = topics.leave("room.lobby");
    expect(host.sent.at(-1)).toEqual({ type: "leave", id: 2, topic: "room.lobby" });
    topics.reply(ok(2, ROOM));
    await expect(left).resolves.toBeUndefined();
    expect(topics.topicOf(ROOM.g)).toBeUndefined();
    expect(host.forgotten).toEqual([ROOM.g]);
    expect(host.events.at(-1)).toEqual({ ...ROOM, action: "left", by: "client" });
    expect(topics.helloTopics()).toBeUndefined();
  });

  it("waits for a welcome while offline, and sends again what a dropped socket left unanswered", async () => {
    const host = makeHost(false);
    const topics = new Topics(host);
    const joined = topics.join("room.lobby");
    expect(host.sent).toEqual([]);
    host.open = true;
    topics.welcomed(undefined);
    expect(host.sent).toEqual([{ type: "join", id: 1, topic: "room.lobby" }]);
    topics.disconnected(); // no reply came: join is idempotent, so it is asked again
    host.open = false;
    host.open = true;
    topics.welcomed([]);
    expect(host.sent.at(-1)).toEqual({ type: "join", id: 2, topic: "room.lobby" });
    expect(topics.reply(ok(1, ROOM))).toBe(false); // the old id is no longer ours
    topics.reply(ok(2, ROOM));
    await expect(joined).resolves.toEqual(ROOM);
  });

  it("a welcome says what the window is in: key topics have names, lost runtime topics are reported", async () => {
    const host = makeHost();
    const topics = new Topics(host);
    const first = topics.join("room.lobby");
    topics.reply(ok(1, ROOM));
    await first;
    const second = topics.join("room.other");
    topics.reply(ok(2, { topic: "room.other", g: "bbbbbbbbbbbb", presence: false }));
    await second;
    host.events.length = 0;
    // Back from a reconnect: room.other's permission now says no.
    topics.welcomed([ROOM, { topic: ["room", 7], g: "cccccccccccc", presence: false }]);
    expect(topics.topicOf("cccccccccccc")).toEqual(["room", 7]);
    expect(topics.topicOf("bbbbbbbbbbbb")).toBeUndefined();
    expect(host.events).toEqual([{ topic: "room.other", g: "bbbbbbbbbbbb", presence: false, action: "left", by: "refused" }]);
    expect(topics.helloTopics()).toEqual([{ topic: "room.lobby", presence: false }]);
  });

  it("topic frames: Python granted or revoked a topic", () => {
    const host = makeHost();
    const topics = new Topics(host);
    topics.topicFrame({ type: "topic", action: "joined", topic: ["room", 7], g: "cccccccccccc", presence: false, e: "ep", seq: "0-0" });
    expect(topics.topicOf("cccccccccccc")).toEqual(["room", 7]);
    expect(host.positions).toEqual([["cccccccccccc", "ep", "0-0"]]);
    expect(host.events).toEqual([{ topic: ["room", 7], g: "cccccccccccc", presence: false, action: "joined", by: "server" }]);
    // Only string topics can be asked for in a hello (the server checks them like joins).
    expect(topics.helloTopics()).toBeUndefined();
    topics.topicFrame({ type: "topic", action: "left", topic: ["room", 7], g: "cccccccccccc", presence: false });
    expect(topics.list()).toEqual([]);
    expect(host.events.at(-1)?.action).toBe("left");
    topics.topicFrame({ type: "topic", action: "joined" }); // malformed: ignored
    expect(topics.list()).toEqual([]);
  });

  it("closing rejects what is pending; a bad topic name is refused without a frame", async () => {
    const host = makeHost();
    const topics = new Topics(host);
    const sent = topics.join("room.lobby");
    host.open = false;
    const waiting = topics.leave("room.lobby");
    topics.closeAll("floorchannels: the client is closed");
    await expect(sent).rejects.toMatchObject({ code: "closed" });
    await expect(waiting).rejects.toMatchObject({ code: "closed" });
    await expect(topics.join("")).rejects.toMatchObject({ code: "invalid_frame" });
    await expect(topics.join(7 as unknown as string)).rejects.toMatchObject({ code: "invalid_frame" });
  });
});

describe("Client.join / leave", () => {
  const clients: Client[] = [];
  beforeEach(() => {
    FakeSocket.reset();
    vi.useFakeTimers();
  });
  afterEach(() => {
    clients.splice(0).forEach((c) => c.close());
    vi.useRealTimers();
  });

  function connected(): { client: Client; ws: FakeSocket; topicEvents: TopicEventDetail[] } {
    const client = new Client({ url: "ws://example.test/ws/", windowKey: "key-1", WebSocket: FakeSocket, random: () => 0 });
    clients.push(client);
    const topicEvents: TopicEventDetail[] = [];
    client.addEventListener("topic", (e) => topicEvents.push(e.detail));
    const ws = FakeSocket.last;
    ws.accept({ e: "ep", seqs: { bbbbbbbbbbbb: "3-0" } });
    return { client, ws, topicEvents };
  }

  it("joins, names the topic of each signal, resumes it after a reconnect and asks for it in hello", async () => {
    const { client, ws, topicEvents } = connected();
    const seen: unknown[] = [];
    client.on("room.message", (kwargs, frame) => void seen.push([client.topicOf(frame), kwargs.n]));
    const joined = client.join("room.lobby");
    const frame = ws.sentOfType("join")[0];
    expect(frame).toEqual({ type: "join", id: frame.id, topic: "room.lobby" });
    ws.receive({ type: "reply", id: frame.id, ok: true, result: { ...ROOM, e: "ep", seq: "5-0" } });
    ws.receive({ type: "refresh", window_key: "key-2", key_expires: 2e9 });
    await expect(joined).resolves.toEqual(ROOM);
    expect(topicEvents).toEqual([{ ...ROOM, action: "joined", by: "client" }]);
    ws.receive({ type: "signal", signal: "room.message", kwargs: { n: 1 }, id: "m1", g: ROOM.g, seq: "6-0", e: "ep" });
    ws.receive({ type: "signal", signal: "room.message", kwargs: { n: 2 }, id: "m2", g: "bbbbbbbbbbbb", seq: "4-0", e: "ep" });
    expect(seen).toEqual([["room.lobby", 1], [undefined, 2]]);
    expect(client.topicList).toEqual([ROOM]);

    ws.serverClose(1006);
    vi.advanceTimersByTime(500);
    const next = FakeSocket.last;
    next.open();
    const hello = next.sentOfType("hello")[0];
    // The refreshed key (it lists the topic), the topic's position, and the topic itself.
    expect(hello.window_key).toBe("key-2");
    expect(hello.resume).toEqual({ e: "ep", seqs: { bbbbbbbbbbbb: "4-0", [ROOM.g]: "6-0" } });
    expect(hello.topics).toEqual([{ topic: "room.lobby", presence: false }]);
    next.welcome({ e: "ep", seqs: { bbbbbbbbbbbb: "4-0", [ROOM.g]: "6-0" }, topics: [ROOM] });
    expect(client.topicOf({ g: ROOM.g })).toBe("room.lobby");
    expect(topicEvents).toHaveLength(1); // still in it: nothing to report
  });

  it("a drop before the topic's first message resumes it from the join's position", async () => {
    const { client, ws } = connected();
    const joined = client.join("room.lobby");
    ws.receive({ type: "reply", id: ws.sentOfType("join")[0].id, ok: true, result: { ...ROOM, e: "ep", seq: "5-0" } });
    await joined;
    ws.serverClose(1006);
    vi.advanceTimersByTime(500);
    FakeSocket.last.open();
    expect(FakeSocket.last.sentOfType("hello")[0].resume.seqs[ROOM.g]).toBe("5-0");
  });

  it("leaves, forgets the topic's position, reports refusals and grants", async () => {
    const { client, ws, topicEvents } = connected();
    const refused = client.join("room.secret");
    ws.receive({ type: "reply", id: ws.sentOfType("join")[0].id, ok: false, error: { code: "forbidden", message: "no" } });
    await expect(refused).rejects.toMatchObject({ code: "forbidden", signal: "join" });

    ws.receive({ type: "topic", action: "joined", ...ROOM, e: "ep", seq: "0-0" });
    expect(topicEvents.at(-1)).toEqual({ ...ROOM, action: "joined", by: "server" });
    const left = client.leave("room.lobby");
    ws.receive({ type: "reply", id: ws.sentOfType("leave")[0].id, ok: true, result: ROOM });
    await left;
    expect(topicEvents.at(-1)).toEqual({ ...ROOM, action: "left", by: "client" });
    ws.serverClose(1006);
    vi.advanceTimersByTime(500);
    FakeSocket.last.open();
    const hello = FakeSocket.last.sentOfType("hello")[0];
    expect(hello.resume.seqs[ROOM.g]).toBeUndefined();
    expect(hello.topics).toBeUndefined();
  });

  it("a join made offline waits for the welcome; a closed client refuses at once", async () => {
    const client = new Client({ url: "ws://example.test/ws/", windowKey: "key-1", WebSocket: FakeSocket, random: () => 0 });
    clients.push(client);
    const joined = client.join("room.lobby", { presence: true });
    const ws = FakeSocket.last;
    ws.open();
    expect(ws.sentOfType("join")).toEqual([]);
    ws.welcome();
    const frame = ws.sentOfType("join")[0];
    expect(frame.presence).toBe(true);
    ws.receive({ type: "reply", id: frame.id, ok: true, result: { ...ROOM, presence: true } });
    await expect(joined).resolves.toEqual({ ...ROOM, presence: true });
    client.close();
    await expect(client.join("room.other")).rejects.toMatchObject({ code: "closed" });
    await expect(client.leave("room.lobby")).rejects.toMatchObject({ code: "closed" });
  });
});
