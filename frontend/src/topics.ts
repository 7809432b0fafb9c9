/**
 * Topics joined at runtime: `join` / `leave` frames and their replies, `topic` frames
 * (the server granted or revoked a topic), and which topic each group alias `g` stands
 * for, so a handler can tell where a message came from (see "Topics joined at runtime"
 * in docs/protocol.md).
 *
 * The server decides: a join is checked against the project's declared topic patterns,
 * and after each change the server sends a fresh key (`refresh`) listing the window's
 * topics, so a reconnect is back in them before its `welcome`. The client also names the
 * topics it joined in every reconnect's `hello` (`topics`): a key fetched anew through
 * `getWindowKey` describes a new window, whose topics the server checks again. The
 * `welcome` lists the topics the window is in; one the client had and the welcome no
 * longer lists was refused on the way back, and is reported as left.
 *
 *   join() ──► waiting ──(welcome)──► sent ──ok──► joined ──leave()──► sent ──ok──► gone
 *                                       │  └─ refused: the promise rejects
 *                                       └─ socket lost: waiting again (join and leave are idempotent)
 */

import { FloorchannelsError } from "./errors.js";
import type { ErrorCode } from "./errors.js";

/** A topic as the server names it: a string for string topics, the decoded canonical form otherwise. */
export type TopicName = string | number | boolean | TopicName[] | { [key: string]: unknown };

export interface JoinOptions {
  /** List this window in the topic's presence (`fc.presence.diff`, `fc.presence.list`). */
  presence?: boolean;
}

/** A topic this window is in. */
export interface JoinedTopic {
  topic: TopicName;
  /** The group alias its `signal` frames carry as `g`. */
  g: string;
  /** Whether the window is listed in the topic's presence. */
  presence: boolean;
}

/** `detail` of the client's `topic` event. */
export interface TopicEventDetail extends JoinedTopic {
  action: "joined" | "left";
  /**
   * `client`: this client's `join()`/`leave()`; `server`: Python granted or revoked it
   * (`grant_topic`, `revoke_topic`); `refused`: a topic the client had was not given back
   * when it reconnected (its permission now says no).
   */
  by: "client" | "server" | "refused";
}

/** What the topics need from the client. */
export interface TopicHost {
  /** A fresh frame id (shared with calls, so replies never collide). */
  nextId(): number;
  /** True when the server has welcomed the current socket. */
  isOpen(): boolean;
  send(frame: object): void;
  /** The window entered group `g` at `seq` (epoch `e`): resume it from there. */
  entered(g: string, e: unknown, seq: unknown): void;
  /** The window left group `g`: forget its position. */
  left(g: string): void;
  emitTopic(detail: TopicEventDetail): void;
}

interface Request {
  kind: "join" | "leave";
  topic: string;
  presence: boolean;
  id: number | undefined;
  resolve: (value: any) => void;
  reject: (error: FloorchannelsError) => void;
}

/** The key a topic is filed under: its JSON, like the server's canonical form for strings. */
function nameOf(topic: unknown): string {
  return JSON.stringify(topic);
}

function toJoined(value: any): JoinedTopic | null {
  if (!value || typeof value !== "object" || typeof value.g !== "string" || !value.g || !("topic" in value)) return null;
  return { topic: value.topic as TopicName, g: value.g, presence: value.presence === true };
}

/** The topics of one client. */
export class Topics {
  /** Every topic of the window (its key's too), by group alias. */
  private readonly byAlias = new Map<string, JoinedTopic>();
  /** The topics joined or granted since the page started, by name: asked for again in `hello`. */
  private readonly runtime = new Map<string, JoinedTopic>();
  /** Requests waiting for a welcomed socket, oldest first. */
  private waiting: Request[] = [];
  /** Requests sent, by frame id. */
  private readonly sent = new Map<string, Request>();

  constructor(private readonly host: TopicHost) {}

  /** Join `topic` (checked on the server); resolves once the window is in it. */
  join(topic: string, options: JoinOptions = {}): Promise<JoinedTopic> {
    return this.request("join", topic, options.presence === true);
  }

  /** Leave `topic`; resolves once nothing of it reaches the window any more. */
  leave(topic: string): Promise<void> {
    return this.request("leave", topic, false).then(() => undefined);
  }

  /** The topic a `signal` frame came through (its `g`), when the server named it. */
  topicOf(g: unknown): TopicName | undefined {
    return typeof g === "string" ? this.byAlias.get(g)?.topic : undefined;
  }

  /** The topics the window is in now (those its key granted included). */
  list(): JoinedTopic[] {
    return Array.from(this.byAlias.values(), (t) => ({ ...t }));
  }

  /**
   * The `topics` field of a reconnect's `hello`: the string topics joined or granted at
   * runtime, each checked again by the server when the key does not list it.
   */
  helloTopics(): Array<{ topic: string; presence: boolean }> | undefined {
    const topics = Array.from(this.runtime.values())
      .filter((t): t is JoinedTopic & { topic: string } => typeof t.topic === "string")
      .map((t) => ({ topic: t.topic, presence: t.presence }));
    return topics.length ? topics : undefined;
  }

  /** A `welcome`: the topics the window is in now. Then the requests that waited are sent. */
  welcomed(topics: unknown): void {
    this.byAlias.clear();
    if (Array.isArray(topics)) {
      for (const value of topics) {
        const joined = toJoined(value);
        if (joined) this.byAlias.set(joined.g, joined);
      }
    }
    const names = new Map(Array.from(this.byAlias.values(), (t) => [nameOf(t.topic), t]));
    for (const [name, had] of Array.from(this.runtime)) {
      const now = names.get(name);
      if (now) {
        this.runtime.set(name, now);
      } else {
        this.runtime.delete(name);
        this.host.emitTopic({ ...had, presence: false, action: "left", by: "refused" });
      }
    }
    const waiting = this.waiting.splice(0);
    for (const request of waiting) this.send(request);
  }

  /** The socket dropped: requests without a reply are sent again after the next welcome. */
  disconnected(): void {
    const unanswered = Array.from(this.sent.values());
    this.sent.clear();
    for (const request of unanswered) request.id = undefined;
    this.waiting = [...unanswered, ...this.waiting];
  }

  /** The client closed for good: every request still pending rejects. */
  closeAll(message: string): void {
    const pending = [...Array.from(this.sent.values()), ...this.waiting.splice(0)];
    this.sent.clear();
    for (const request of pending) request.reject(new FloorchannelsError("closed", message, request.kind));
  }

  /** A `reply` frame: true when it answered one of these requests. */
  reply(frame: any): boolean {
    const request = this.sent.get(String(frame.id));
    if (!request) return false;
    this.sent.delete(String(frame.id));
    if (!frame.ok) {
      const error = frame.error ?? {};
      const code: ErrorCode = typeof error.code === "string" ? error.code : "server_error";
      request.reject(new FloorchannelsError(code, typeof error.message === "string" ? error.message : code, request.kind));
      return true;
    }
    const state = toJoined(frame.result);
    if (!state) {
      request.reject(new FloorchannelsError("server_error", `floorchannels: a malformed ${request.kind} reply`, request.kind));
      return true;
    }
    if (request.kind === "join") {
      this.entered(state, frame.result, "client");
      request.resolve({ ...state });
    } else {
      this.exited(state, "client");
      request.resolve(undefined);
    }
    return true;
  }

  /** A `topic` frame: Python granted (`joined`) or revoked (`left`) a topic. */
  topicFrame(frame: any): void {
    const state = toJoined(frame);
    if (!state) return;
    if (frame.action === "joined") this.entered(state, frame, "server");
    else if (frame.action === "left") this.exited(state, "server");
  }

  private entered(state: JoinedTopic, frame: any, by: "client" | "server"): void {
    const known = this.byAlias.has(state.g);
    this.byAlias.set(state.g, state);
    this.runtime.set(nameOf(state.topic), state);
    // Its position: a drop before the topic's first message still resumes it from here.
    if (frame.seq !== undefined) this.host.entered(state.g, frame.e, frame.seq);
    if (!known || by === "server") this.host.emitTopic({ ...state, action: "joined", by });
  }

  private exited(state: JoinedTopic, by: "client" | "server"): void {
    const known = this.byAlias.delete(state.g);
    this.runtime.delete(nameOf(state.topic));
    this.host.left(state.g);
    if (known) this.host.emitTopic({ ...state, presence: false, action: "left", by });
  }

  private request(kind: "join" | "leave", topic: string, presence: boolean): Promise<any> {
    return new Promise((resolve, reject) => {
      if (typeof topic !== "string" || !topic) {
        reject(new FloorchannelsError("invalid_frame", `floorchannels: ${kind}() needs a topic name (a string)`, kind));
        return;
      }
      const request: Request = { kind, topic, presence, id: undefined, resolve, reject };
      if (this.host.isOpen()) this.send(request);
      else this.waiting.push(request);
    });
  }

  private send(request: Request): void {
    request.id = this.host.nextId();
    this.sent.set(String(request.id), request);
    const frame: Record<string, unknown> = { type: request.kind, id: request.id, topic: request.topic };
    if (request.kind === "join" && request.presence) frame.presence = true;
    this.host.send(frame);
  }
}
