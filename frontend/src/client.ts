/**
 * The connection state machine: one websocket per page, `hello` with the window
 * key, calls with replies, server signals to handlers, heartbeats, and
 * reconnects with backoff until the server refuses the key.
 *
 *            ┌──── welcome ────┐
 *            │                 ▼
 *   ──► connecting         open ──── socket lost / no heartbeat ──► connecting (after a backoff delay)
 *            │                 │
 *            └── key refused (4400/4401/4403/4410), replaced (4409) or close() ──► closed (final)
 *
 * With a `getWindowKey` hook (`keys.ts`) an expired key (4410) is not final: the client
 * asks the hook for a new key (also before a reconnect when the held key is about to
 * expire, and first thing when it was given no key) and connects with it, resuming as
 * with any reconnect. The hook's failures are retried on the backoff schedule. Nor is
 * 4409 (another socket took this window over: a duplicated tab, a copied key): the held
 * key would take the window back and the two would close each other in turn, so the
 * client asks the hook for a key of a new window instead.
 *
 * Resource subscriptions (`subscribe()`) live in `subscriptions.ts`; the client
 * feeds them the socket's lifecycle: sent after each `welcome`, forgotten when
 * the socket drops, dropped for good on close.
 *
 * Topics joined at runtime (`join()`, `leave()`) live in `topics.ts`: the welcome says
 * which topics the window is in, requests made offline wait for it, and `topicOf(frame)`
 * names the topic a signal came through. The server sends a key listing the window's
 * topics after each change, so a reconnect is back in them; its `hello` also names them
 * (`topics`) for a key that may not list them (a new one from `getWindowKey`).
 *
 * Recovery (`recovery.ts`): the client remembers the last contiguous `seq` of
 * each group and the history epoch from `signal` frames, sends them as `resume`
 * in the `hello` of every reconnect, runs handlers once per message (known by id
 * or position), and turns `resync` frames into a `resync` event. A gap in a group's seqs still open after
 * `gapTimeout` ms makes it reconnect, so the server replays what is missing.
 *
 * Protocol version 2 (`frames.ts`): the server sends signals as compact arrays, several
 * frames in one message; they are decoded into the same frames, without ids, so the rest
 * of the client does not tell the versions apart. A server that only knows version 1
 * refuses the hello (4400) before any welcome: the client then says version 1, for good.
 */

import { Backoff } from "./backoff.js";
import { websocketUrl } from "./config.js";
import { WindowKeyError, toGrant } from "./keys.js";
import type { GetWindowKey, WindowKeyGrant } from "./keys.js";
import { Frames } from "./frames.js";
import type { SignalFrame } from "./frames.js";
import { Recovery } from "./recovery.js";
import type { ResyncDetail } from "./recovery.js";
import { FloorchannelsError } from "./errors.js";
import type { ErrorCode } from "./errors.js";
import { Subscription, Subscriptions } from "./subscriptions.js";
import { Topics } from "./topics.js";
import type { JoinOptions, JoinedTopic, TopicEventDetail, TopicName } from "./topics.js";
import type {
  EventFrame,
  ResourceEventHandler,
  ResubscribeDetail,
  SubscribeOptions,
  SubscriptionErrorDetail,
} from "./subscriptions.js";

/** The protocol version the client asks for (it falls back to 1 for a server that refuses it). */
export const PROTOCOL_VERSION = 2;
/** The close code of a refused hello: from a version 1 server, also the answer to a version 2 hello. */
const BAD_HELLO_CLOSE_CODE = 4400;

/** Close codes after which retrying with the same key cannot succeed. */
export const REFUSED_CLOSE_CODES: ReadonlySet<number> = new Set([4400, 4401, 4403, 4410]);
/** The key is past its lifetime: final, unless a `getWindowKey` hook can fetch a new one. */
export const EXPIRED_CLOSE_CODE = 4410;
/** A newer socket presented this window's key (another tab holding the same key). */
export const REPLACED_CLOSE_CODE = 4409;
/** The server is shutting down on purpose: reconnect at once (within a short jitter). */
export const GOING_AWAY_CLOSE_CODE = 4503;
/** The key was refused for who the user is: final (also used when the key view says `session_ended`). */
const KEY_REFUSED_CLOSE_CODE = 4403;
/** The key view's `code` for a renewal whose signed-in user is gone. */
export const SESSION_ENDED = "session_ended";

export type State = "connecting" | "open" | "closed";

/** The part of the browser's WebSocket the client uses (tests pass a fake). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => any) | null;
  onmessage: ((ev: { data: unknown }) => any) | null;
  onclose: ((ev: { code: number; reason: string }) => any) | null;
  onerror: ((ev: any) => any) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /**
   * The websocket URL (`ws:`/`wss:`). Optional with `getWindowKey` when the hook's answer
   * names one; when given, it is used whatever the hook says.
   */
  url?: string;
  /** The window key from the page config. Optional with `getWindowKey` (asked for first). */
  windowKey?: string;
  /**
   * Fetches a new window key (see `keyFromUrl()`): called when the client has none, when
   * the server refuses the held one as expired (4410), and before a reconnect when it
   * expires within `keyRenewBefore` seconds.
   */
  getWindowKey?: GetWindowKey;
  /**
   * Seconds before the held key's expiry within which a reconnect first asks
   * `getWindowKey` for a new one (default 60).
   */
  keyRenewBefore?: number;
  /** Smallest reconnect delay in ms (default 500). */
  backoffMin?: number;
  /** Largest reconnect delay in ms (default 20000). */
  backoffMax?: number;
  /** Random source for the backoff jitter, in [0, 1) (default Math.random). */
  random?: () => number;
  /** Seconds between pings when `welcome` names none (default 25). */
  heartbeat?: number;
  /**
   * Ms to wait, after a ping, for any frame before the link is taken as dead
   * (default: half the heartbeat interval + 5 s).
   */
  heartbeatTimeout?: number;
  /** Ms from opening the socket to `welcome` before giving up on this attempt (default 10000). */
  connectTimeout?: number;
  /**
   * Ms a gap in a group's seqs may stay open (a later message came first: the missing
   * one may still be on its way) before the client reconnects to have it replayed
   * (default 2000).
   */
  gapTimeout?: number;
  /** Default timeout of a call in ms, buffering included (default 30000; 0 = none). */
  callTimeout?: number;
  /** How many calls may wait while offline (default 100). */
  bufferSize?: number;
  /** The WebSocket class (default: the browser's). */
  WebSocket?: WebSocketConstructor;
}

export interface CallOptions {
  /** Ms before the call rejects with code `timeout` (default: the client's `callTimeout`; 0 = none). */
  timeout?: number;
  /** Resolve with the whole `{result, queued}` instead of the bare result. */
  reply?: boolean;
}

/** What `call(..., {reply: true})` resolves with. */
export interface CallReply<T = unknown> {
  /** The handler's return value; `null` when the call was queued. */
  result: T | null;
  /** True when the server handed the signal to a worker queue instead of running it. */
  queued: boolean;
}

export type { SignalFrame } from "./frames.js";

export type SignalHandler = (kwargs: Record<string, any>, frame: SignalFrame) => unknown;

export interface WelcomeFrame {
  type: "welcome";
  window_id: string;
  protocol: number;
  heartbeat?: number;
  key_expires?: number;
  /** The topics the window is in, with the group alias `g` of their signals (when it has any). */
  topics?: JoinedTopic[];
  [key: string]: unknown;
}

/** `detail` of each event the client dispatches. */
export interface ClientEventDetails {
  /** The state changed. */
  statechange: { state: State; previous: State };
  /** The server accepted the window (every (re)connect). */
  welcome: WelcomeFrame;
  /**
   * A fresh key, used on the next (re)connect: sent by the server (`source: "server"`), or
   * returned by `getWindowKey` (`source: "getWindowKey"`).
   */
  refresh: { windowKey: string; keyExpires: number | undefined; source: "server" | "getWindowKey" };
  /** `getWindowKey` failed (rejected, returned no key, or did not answer in time); it is asked again in `delay` ms. */
  keyerror: { error: unknown; delay: number };
  /** The socket dropped; a reconnect is due in `delay` ms. `reason`: the server's close reason. */
  disconnect: { code: number; reason: string; delay: number };
  /** The server refused the window key: the client is closed for good; reload the page. */
  refused: { code: number; reason: string };
  /**
   * A newer socket opened this window with the same key (4409). `final`: the client is closed
   * for good (it has no `getWindowKey`); otherwise it goes on as a new window, with a new key.
   */
  replaced: { code: number; reason: string; final: boolean };
  /** The server sent an `error` frame not tied to a call. */
  error: { code: string; message: string };
  /** A subscription was renewed after a reconnect: refetch what may have changed meanwhile. */
  resubscribe: ResubscribeDetail;
  /**
   * The window joined or left a topic at runtime: by its own `join()`/`leave()`
   * (`by: "client"`), because Python granted or revoked it (`"server"`), or because a
   * reconnect did not get it back (`"refused"`: its permission now says no).
   */
  topic: TopicEventDetail;
  /** The server refused to renew a subscription after a reconnect: it is dropped. */
  subscriptionerror: SubscriptionErrorDetail;
  /** Messages to this window may be lost and cannot be replayed: refetch what the page shows. */
  resync: ResyncDetail;
}

export type ClientEventMap = { [K in keyof ClientEventDetails]: CustomEvent<ClientEventDetails[K]> };

interface Pending {
  id: number;
  signal: string;
  frame: string;
  wantReply: boolean;
  resolve: (value: unknown) => void;
  reject: (error: FloorchannelsError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const OPEN = 1;

/**
 * The request header that tells the server which window made a REST request: that
 * window's copies of the request's resource events come marked `echo: true` (only when
 * the window belongs to the requesting user; nothing is suppressed).
 */
export const WINDOW_HEADER = "X-Floorchannels-Window";

export interface Client {
  addEventListener<K extends keyof ClientEventMap>(
    type: K,
    listener: (event: ClientEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof ClientEventMap>(
    type: K,
    listener: (event: ClientEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

export class Client extends EventTarget {
  /** `connecting`, `open` (welcomed) or `closed` (final). */
  state: State = "connecting";
  /** The window id from the last `welcome`. */
  windowId: string | undefined;
  /** Unix seconds after which the current key expires, when known. */
  keyExpires: number | undefined;
  /** Why the client closed: `"client"` (close() was called) or the refusing close code. */
  closedBy: "client" | number | undefined;

  /** The websocket URL (a `url` named by `getWindowKey`'s answer replaces it when no `url` option was given). */
  url: string;
  private windowKey: string;
  private readonly getWindowKey: GetWindowKey | undefined;
  private readonly fixedUrl: boolean;
  private readonly keyRenewBefore: number;
  /** The held key was refused as expired: ask the hook before the next connect. */
  private keyStale = false;
  /** The key this window started with (the page's, or the hook's): `refresh` frames replace `windowKey` only. */
  private firstKey: string;
  /** The keys of the window another socket took over (4409): the hook must give another. */
  private replacedKeys: ReadonlySet<string> | undefined;
  /** Counts key requests: the answer of an abandoned one (timed out, closed) is ignored. */
  private keyRequest = 0;
  private keyTimer: ReturnType<typeof setTimeout> | undefined;
  /** Why the client is closed, for the errors of what is asked of it afterwards. */
  private closedMessage = "floorchannels: the client is closed";
  private readonly backoff: Backoff;
  private readonly WS: WebSocketConstructor;
  private readonly defaultHeartbeat: number;
  private readonly heartbeatTimeoutOption: number | undefined;
  private readonly connectTimeout: number;
  private readonly gapTimeout: number;
  private readonly callTimeout: number;
  private readonly bufferSize: number;

  private ws: WebSocketLike | null = null;
  private handlers = new Map<string, Set<SignalHandler>>();
  private sent = new Map<string, Pending>();
  private buffer: Pending[] = [];
  private nextCallId = 1;
  private nextPingId = 1;
  private readonly recovery = new Recovery();
  private readonly frames = new Frames();
  /** The protocol version the next hello says. */
  private protocol = PROTOCOL_VERSION;
  /** Whether a socket was ever welcomed: later sockets are reconnects, which resume. */
  private welcomedBefore = false;
  private readonly topics = new Topics({
    nextId: () => this.nextCallId++,
    isOpen: () => this.state === "open" && this.ws !== null && this.ws.readyState === OPEN,
    send: (frame) => this.send(frame),
    // The group's position when the window entered it: a drop before its first message
    // still resumes it from there.
    entered: (g, e, seq) => this.recovery.entered(g, e, seq),
    left: (g) => this.recovery.resynced(g),
    emitTopic: (detail) => this.emit("topic", detail),
  });
  private readonly subscriptions = new Subscriptions({
    nextId: () => this.nextCallId++,
    isOpen: () => this.state === "open" && this.ws !== null && this.ws.readyState === OPEN,
    send: (frame) => this.send(frame),
    emitResubscribe: (detail) => this.emit("resubscribe", detail),
    emitSubscriptionError: (detail) => this.emit("subscriptionerror", detail),
  });

  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly random: () => number;
  private readonly backoffMin: number;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private deadTimer: ReturnType<typeof setTimeout> | undefined;
  private gapTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: ClientOptions) {
    super();
    if (!options.url && !options.getWindowKey) throw new TypeError("floorchannels: no websocket url");
    if (!options.windowKey && !options.getWindowKey) {
      throw new TypeError("floorchannels: no window key (pass windowKey, or getWindowKey to fetch one)");
    }
    this.url = options.url ?? "";
    this.fixedUrl = Boolean(options.url);
    this.windowKey = this.firstKey = options.windowKey ?? "";
    this.getWindowKey = options.getWindowKey;
    this.keyRenewBefore = options.keyRenewBefore ?? 60;
    this.backoff = new Backoff({ min: options.backoffMin, max: options.backoffMax, random: options.random });
    this.random = options.random ?? Math.random;
    this.backoffMin = options.backoffMin ?? 500;
    const WS = options.WebSocket ?? (globalThis.WebSocket as unknown as WebSocketConstructor | undefined);
    if (!WS) throw new TypeError("floorchannels: no WebSocket implementation");
    this.WS = WS;
    this.defaultHeartbeat = options.heartbeat ?? 25;
    this.heartbeatTimeoutOption = options.heartbeatTimeout;
    this.connectTimeout = options.connectTimeout ?? 10000;
    this.gapTimeout = options.gapTimeout ?? 2000;
    this.callTimeout = options.callTimeout ?? 30000;
    this.bufferSize = options.bufferSize ?? 100;
    globalThis.addEventListener?.("online", this.onOnline);
    this.connectNext();
  }

  // ---- public API ---------------------------------------------------------

  /**
   * Run a server signal. Resolves with the handler's result (`null` when the
   * server queued it; pass `{reply: true}` to get `{result, queued}`), or
   * rejects with a `FloorchannelsError` carrying a `code`.
   */
  call<T = any>(signal: string, kwargs?: Record<string, unknown>, options?: CallOptions & { reply?: false }): Promise<T>;
  call<T = any>(signal: string, kwargs: Record<string, unknown> | undefined, options: CallOptions & { reply: true }): Promise<CallReply<T>>;
  call(signal: string, kwargs: Record<string, unknown> = {}, options: CallOptions = {}): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.state === "closed") {
        reject(new FloorchannelsError("closed", this.closedMessage, signal));
        return;
      }
      const id = this.nextCallId++;
      const pending: Pending = {
        id,
        signal,
        frame: JSON.stringify({ type: "call", id, signal, kwargs }),
        wantReply: options.reply === true,
        resolve,
        reject,
        timer: undefined,
      };
      if (this.state === "open" && this.ws && this.ws.readyState === OPEN) {
        this.sendCall(pending);
      } else if (this.buffer.length >= this.bufferSize) {
        reject(new FloorchannelsError("buffer_full", `floorchannels: offline and ${this.bufferSize} calls already wait`, signal));
        return;
      } else {
        this.buffer.push(pending);
      }
      const timeout = options.timeout ?? this.callTimeout;
      if (timeout > 0 && Number.isFinite(timeout)) {
        pending.timer = setTimeout(() => {
          pending.timer = undefined;
          this.forget(pending);
          reject(new FloorchannelsError("timeout", `floorchannels: no reply to ${signal} within ${timeout} ms`, signal));
        }, timeout);
      }
    });
  }

  /** Run `handler(kwargs, frame)` for each `signal` frame named `signal`. Returns a function that removes it. */
  on(signal: string, handler: SignalHandler): () => void {
    let set = this.handlers.get(signal);
    if (!set) this.handlers.set(signal, (set = new Set()));
    set.add(handler);
    return () => this.off(signal, handler);
  }

  /** Remove one handler, or every handler of `signal` when none is given. */
  off(signal: string, handler?: SignalHandler): void {
    const set = this.handlers.get(signal);
    if (!set) return;
    if (handler) set.delete(handler);
    if (!handler || set.size === 0) this.handlers.delete(signal);
  }

  /**
   * Receive the live events of a resource (or of one object, with `{pk}`):
   * `handler(event)` runs for each `event` frame of this subscription. `params` (the
   * list's filter parameters, as in a query string) and `kwargs` (a nested route's URL
   * kwargs) make it hear only what a GET with them would list. Resolves
   * with a `Subscription` once the server accepted it; rejects with a
   * `FloorchannelsError` (`unknown_resource`, `forbidden`, `not_found`,
   * `too_many_subscriptions`, `invalid_arguments` (a filter backend refused `params`),
   * `closed`, `aborted`, …). Waits while offline, and
   * is renewed by itself after every reconnect (see the `resubscribe` event).
   */
  subscribe<T = any>(resource: string, handler: ResourceEventHandler<T>): Promise<Subscription>;
  subscribe<T = any>(resource: string, options: SubscribeOptions | undefined, handler: ResourceEventHandler<T>): Promise<Subscription>;
  subscribe(
    resource: string,
    optionsOrHandler: SubscribeOptions | ResourceEventHandler | undefined,
    maybeHandler?: ResourceEventHandler,
  ): Promise<Subscription> {
    const handler = typeof optionsOrHandler === "function" ? optionsOrHandler : maybeHandler;
    const options = typeof optionsOrHandler === "function" ? {} : optionsOrHandler ?? {};
    if (this.state === "closed") {
      return Promise.reject(new FloorchannelsError("closed", this.closedMessage));
    }
    return this.subscriptions.add(resource, options, handler as ResourceEventHandler);
  }

  /**
   * Join `topic` without reconnecting. The server checks it against the project's declared
   * topic patterns (`FLOORCHANNELS["TOPICS"]`) and their permission: a refusal rejects with
   * code `forbidden` (or `too_many_topics`, `invalid_frame`). Resolves once the window is in
   * the topic; it stays in it across reconnects. With `{presence: true}` the window is
   * listed in the topic's presence. Made while offline, it is sent after the next welcome.
   */
  join(topic: string, options: JoinOptions = {}): Promise<JoinedTopic> {
    if (this.state === "closed") return Promise.reject(new FloorchannelsError("closed", this.closedMessage, "join"));
    return this.topics.join(topic, options);
  }

  /** Leave `topic` (joined, granted, or from the key): once resolved, nothing of it arrives. */
  leave(topic: string): Promise<void> {
    if (this.state === "closed") return Promise.reject(new FloorchannelsError("closed", this.closedMessage, "leave"));
    return this.topics.leave(topic);
  }

  /**
   * The topic a `signal` frame came through (a handler's second argument), or `undefined`
   * when it came to the window, its user or everyone. String topics are themselves; others
   * (`("room", 7)` in Python) their JSON form decoded (`["room", 7]`).
   */
  topicOf(frame: Pick<SignalFrame, "g"> | undefined): TopicName | undefined {
    return this.topics.topicOf(frame?.g);
  }

  /** The topics the window is in now: granted by its key, joined, or granted since. */
  get topicList(): JoinedTopic[] {
    return this.topics.list();
  }

  /** The number of live subscriptions (confirmed or waiting). */
  get subscriptionCount(): number {
    return this.subscriptions.size;
  }

  /**
   * Headers for the page's REST requests (`fetch(url, {headers: client.restHeaders()})`):
   * `{"X-Floorchannels-Window": windowId}`. The events of the changes such a request
   * makes still reach this window, marked `echo: true` (`ResourceEvent.echo`), so a page
   * that applied the REST response itself can tell them apart; every other window (this
   * user's other tabs included) gets them unmarked. Empty before the first `welcome`.
   */
  restHeaders(): Record<string, string> {
    return this.windowId ? { [WINDOW_HEADER]: this.windowId } : {};
  }

  /** Close for good: no more reconnects; waiting calls reject with `closed`. */
  close(): void {
    this.shutdown("client");
  }

  /** The number of calls waiting for the connection. */
  get buffered(): number {
    return this.buffer.length;
  }

  // ---- socket lifecycle ---------------------------------------------------

  /** The browser is back online: try now rather than at the end of the backoff delay. */
  private readonly onOnline = (): void => {
    if (this.reconnectTimer === undefined || this.state === "closed") return;
    clearTimeout(this.reconnectTimer);
    this.connectNext();
  };

  /** Open the next socket, after asking `getWindowKey` for a key when the held one will not do. */
  private connectNext(): void {
    this.reconnectTimer = undefined;
    if (this.getWindowKey && (this.keyStale || !this.windowKey || !this.url || this.keyExpiresSoon())) {
      this.renewKey();
    } else {
      this.openSocket();
    }
  }

  private keyExpiresSoon(): boolean {
    return this.keyExpires !== undefined && this.keyExpires * 1000 - Date.now() <= this.keyRenewBefore * 1000;
  }

  private renewKey(): void {
    this.setState("connecting");
    const request = ++this.keyRequest;
    this.keyTimer = setTimeout(
      () => this.keyFailed(request, new WindowKeyError(`floorchannels: getWindowKey() did not answer within ${this.connectTimeout} ms`)),
      this.connectTimeout,
    );
    let answer: Promise<unknown>;
    try {
      answer = Promise.resolve(this.getWindowKey!({ previousKey: this.windowKey || undefined }));
    } catch (error) {
      answer = Promise.reject(error);
    }
    answer.then(
      (value) => this.keyArrived(request, value),
      (error) => this.keyFailed(request, error),
    );
  }

  private keyArrived(request: number, value: unknown): void {
    if (request !== this.keyRequest || this.state === "closed") return;
    let url = this.url;
    let grant: WindowKeyGrant;
    const key = toGrantOrNull(value)?.windowKey;
    if (key !== undefined && this.replacedKeys?.has(key)) {
      // The hook hands out a key of the window another socket took over: using it would take
      // the window back from that socket, which would then do the same.
      this.keyRequest++;
      clearTimeout(this.keyTimer);
      this.shutdown(REPLACED_CLOSE_CODE, "getWindowKey() returned the key of the window another connection took over");
      return;
    }
    try {
      grant = toGrant(value);
      if (grant.url && !this.fixedUrl) url = websocketUrl(grant.url, globalThis.location?.href ?? (this.url || undefined));
      if (!url) throw new WindowKeyError("floorchannels: no websocket url: pass {url}, or return one from getWindowKey()");
    } catch (error) {
      this.keyFailed(request, error);
      return;
    }
    this.keyRequest++;
    clearTimeout(this.keyTimer);
    this.keyTimer = undefined;
    this.url = url;
    this.windowKey = this.firstKey = grant.windowKey;
    this.keyExpires = grant.expires;
    this.keyStale = false;
    this.replacedKeys = undefined;
    this.emit("refresh", { windowKey: this.windowKey, keyExpires: this.keyExpires, source: "getWindowKey" });
    // A listener may have closed the client.
    if ((this.state as State) !== "closed") this.openSocket();
  }

  /** The hook failed: say so, and ask again after a backoff delay (never in a tight loop). */
  private keyFailed(request: number, error: unknown): void {
    if (request !== this.keyRequest || this.state === "closed") return;
    this.keyRequest++;
    clearTimeout(this.keyTimer);
    this.keyTimer = undefined;
    if (error instanceof WindowKeyError && error.serverCode === SESSION_ENDED) {
      // The signed-in user this window was opened for is gone: no retry can change that,
      // and a key for someone else (or no one) would turn the page into theirs.
      this.shutdown(KEY_REFUSED_CLOSE_CODE, "the session this window was opened with has ended");
      return;
    }
    const delay = this.backoff.next();
    this.reconnectTimer = setTimeout(() => this.connectNext(), delay);
    console.warn(`floorchannels: no window key (asking again in ${delay} ms)`, error);
    this.emit("keyerror", { error, delay });
  }

  private openSocket(): void {
    this.reconnectTimer = undefined;
    this.setState("connecting");
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.url);
    } catch (error) {
      console.error("floorchannels: cannot open the websocket", error);
      this.scheduleReconnect(1006, "constructor failed");
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (ws === this.ws) this.sendHello();
    };
    ws.onmessage = (event) => {
      if (ws === this.ws) this.receive(ws, event.data);
    };
    ws.onclose = (event) => {
      if (ws === this.ws) this.socketClosed(event.code, event.reason || "");
    };
    ws.onerror = () => {
      // A close event always follows; nothing to do here.
    };
    this.connectTimer = setTimeout(() => this.drop("no welcome in time"), this.connectTimeout);
  }

  /** Give up on the current socket without waiting for its close handshake, then reconnect. */
  private drop(reason: string): void {
    const ws = this.ws;
    if (!ws) return;
    this.detach();
    try {
      ws.close(1000, reason);
    } catch {
      // ignore
    }
    this.socketClosed(1006, reason);
  }

  private socketClosed(code: number, reason: string): void {
    const welcomed = this.state === "open";
    this.detach();
    this.subscriptions.disconnected();
    this.topics.disconnected();
    this.failSent("disconnected", "floorchannels: the connection dropped before the reply came");
    if (this.state === "closed") return;
    // A server that only knows version 1 refuses a version 2 hello: try again saying 1.
    const fellBack = code === BAD_HELLO_CLOSE_CODE && !welcomed && this.fallBack();
    if (code === EXPIRED_CLOSE_CODE && this.getWindowKey) {
      this.keyStale = true; // the next attempt asks for a new key first
    } else if (code === REPLACED_CLOSE_CODE && this.getWindowKey) {
      this.keyStale = true;
      this.replacedKeys = new Set([this.firstKey, this.windowKey]);
      this.emit("replaced", { code, reason, final: false });
    } else if ((REFUSED_CLOSE_CODES.has(code) && !fellBack) || code === REPLACED_CLOSE_CODE) {
      this.shutdown(code, reason);
      return;
    }
    this.scheduleReconnect(code, reason);
  }

  private scheduleReconnect(code: number, reason: string): void {
    this.setState("connecting");
    // A server that said it is going away is replaced behind the load balancer: come back
    // now, spread over backoffMin so a whole fleet does not arrive in the same instant.
    const delay = code === GOING_AWAY_CLOSE_CODE ? Math.floor(this.random() * this.backoffMin) : this.backoff.next();
    this.reconnectTimer = setTimeout(() => this.connectNext(), delay);
    this.emit("disconnect", { code, reason, delay });
  }

  /** Detach from the current socket and stop its timers. */
  private detach(): void {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    clearTimeout(this.connectTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.deadTimer);
    clearTimeout(this.gapTimer);
    this.connectTimer = this.pingTimer = this.deadTimer = this.gapTimer = undefined;
  }

  private shutdown(by: "client" | number, reason = ""): void {
    if (this.state === "closed") return;
    this.closedBy = by;
    globalThis.removeEventListener?.("online", this.onOnline);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.keyRequest++; // an answer still on its way is ignored
    clearTimeout(this.keyTimer);
    this.keyTimer = undefined;
    const ws = this.ws;
    this.detach();
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        // ignore
      }
    }
    this.setState("closed");
    const why = reason ? `${by}: ${reason}` : String(by);
    const message = (this.closedMessage =
      by === "client"
        ? "floorchannels: the client is closed"
        : by === REPLACED_CLOSE_CODE
          ? `floorchannels: a newer connection of this window replaced this one (${why})`
          : `floorchannels: the server refused the window key (${why})`);
    this.failSent("closed", message);
    const buffered = this.buffer.splice(0);
    for (const p of buffered) this.settle(p).reject(new FloorchannelsError("closed", message, p.signal));
    this.subscriptions.closeAll(message);
    this.topics.closeAll(message);
    if (by === REPLACED_CLOSE_CODE) this.emit("replaced", { code: by, reason, final: true });
    else if (by !== "client") this.emit("refused", { code: by, reason });
  }

  // ---- frames -------------------------------------------------------------

  /** One websocket message: a frame, or (protocol 2) a batch of them, each handled as if alone. */
  private receive(ws: WebSocketLike, data: unknown): void {
    clearTimeout(this.deadTimer);
    this.deadTimer = undefined;
    let message: unknown;
    try {
      message = JSON.parse(String(data));
    } catch {
      console.warn("floorchannels: ignoring a frame that is not JSON");
      return;
    }
    for (const frame of this.frames.split(message)) {
      // A handler may have closed the client: what followed in the batch is not for it.
      if (ws !== this.ws) return;
      if (Array.isArray(frame)) {
        const signal = this.frames.signal(frame, this.recovery.currentEpoch);
        if (signal) this.signalled(signal);
      } else this.handle(frame);
    }
  }

  private handle(frame: any): void {
    if (!frame || typeof frame !== "object") return;
    switch (frame.type) {
      case "welcome":
        this.welcomed(frame as WelcomeFrame);
        break;
      case "reply":
        if (!this.subscriptions.reply(frame) && !this.topics.reply(frame)) this.replied(frame);
        break;
      case "event":
        if (frame.subscription !== undefined && typeof frame.action === "string") this.subscriptions.event(frame as EventFrame);
        break;
      case "signal":
        if (typeof frame.signal === "string") this.signalled(frame as SignalFrame);
        break;
      case "resync":
        this.resynced(frame);
        break;
      case "topic":
        this.topics.topicFrame(frame);
        break;
      case "refresh":
        if (typeof frame.window_key === "string" && frame.window_key) {
          this.windowKey = frame.window_key;
          this.keyExpires = typeof frame.key_expires === "number" ? frame.key_expires : undefined;
          this.emit("refresh", { windowKey: this.windowKey, keyExpires: this.keyExpires, source: "server" });
        }
        break;
      case "pong":
        break;
      case "error":
        console.warn(`floorchannels: server error frame: ${frame.code}: ${frame.message}`);
        this.emit("error", { code: String(frame.code), message: String(frame.message ?? "") });
        break;
      default:
        // Unknown frame types are ignored so the server can add new ones.
        break;
    }
  }

  /** A signal frame (either version's): its handlers run unless it was handled already. */
  private signalled(frame: SignalFrame): void {
    if (this.recovery.signal(frame)) this.dispatchSignal(frame);
    this.watchGaps();
  }

  /**
   * The server speaks protocol version 1: it refused a version 2 hello (4400 before a
   * welcome), or its welcome says 1 (or no version). Every later hello says 1, for this
   * client's life: asking again would only be refused again. Returns whether the client
   * was asking for version 2 until now.
   */
  private fallBack(): boolean {
    if (this.protocol === 1) return false;
    this.protocol = 1;
    return true;
  }

  private welcomed(frame: WelcomeFrame): void {
    if (frame.protocol !== PROTOCOL_VERSION) this.fallBack();
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.windowId = frame.window_id;
    this.welcomedBefore = true;
    this.recovery.positions((frame as any).e, (frame as any).seqs);
    this.watchGaps();
    if (typeof frame.key_expires === "number") this.keyExpires = frame.key_expires;
    this.backoff.reset();
    this.startHeartbeat(typeof frame.heartbeat === "number" && frame.heartbeat > 0 ? frame.heartbeat : this.defaultHeartbeat);
    this.setState("open");
    // Which topics the window is in (a listener of welcome may ask topicOf()); joins and
    // leaves made offline go out now.
    this.topics.welcomed(frame.topics);
    if (this.state !== "open") return; // a topic listener closed us
    this.emit("welcome", frame);
    // Subscriptions first (so a buffered call's changes are not missed), then the
    // calls made while offline, oldest first; unless a listener closed us.
    if (this.state === "open") this.subscriptions.welcomed();
    while (this.state === "open" && this.buffer.length) this.sendCall(this.buffer.shift()!);
  }

  /** `hello`, with `resume` on a reconnect when there is anything to resume (a refreshed key is the same window). */
  private sendHello(): void {
    const hello: Record<string, unknown> = { type: "hello", window_key: this.windowKey, protocol: this.protocol };
    const resume = this.welcomedBefore ? this.recovery.resume() : undefined;
    if (resume) hello.resume = resume;
    // Topics joined at runtime, for a key that may not list them (a new window's key).
    const topics = this.topics.helloTopics();
    if (topics) hello.topics = topics;
    this.send(hello);
  }

  private resynced(frame: any): void {
    const group = typeof frame.g === "string" && frame.g ? frame.g : null;
    this.recovery.resynced(group, frame.seq, frame.e);
    this.watchGaps();
    const detail: ResyncDetail = { reason: String(frame.reason ?? ""), group };
    if (typeof frame.since === "number") detail.since = frame.since;
    if (typeof frame.at === "number") detail.at = frame.at;
    if (typeof frame.resource === "string") detail.resource = frame.resource;
    this.emit("resync", detail);
  }

  // ---- gaps in a group's seqs --------------------------------------------

  /** Have a timer run at the deadline of the oldest open gap (none when no gap is open). */
  private watchGaps(): void {
    const oldest = this.recovery.oldestGap();
    if (oldest === undefined) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
    } else if (this.gapTimer === undefined && this.ws !== null) {
      const wait = Math.max(0, oldest + this.gapTimeout - Date.now());
      this.gapTimer = setTimeout(() => this.gapDeadline(), wait);
    }
  }

  /**
   * A gap outlived its deadline: reconnect, so `resume` (from the last contiguous seq)
   * has the server replay what is missing, or say `resync`. A gap that a reconnect did
   * not fill either is reported as a `resync` event (reason `gap`).
   */
  private gapDeadline(): void {
    this.gapTimer = undefined;
    if (this.state !== "open") return; // the next welcome watches the gaps again
    const { reconnect, abandoned } = this.recovery.overdue(Date.now() - this.gapTimeout);
    for (const group of abandoned) this.emit("resync", { reason: "gap", group });
    if (reconnect && this.state === "open") {
      this.drop("a gap in the messages of a group");
      return;
    }
    this.watchGaps();
  }

  private replied(frame: any): void {
    const key = String(frame.id);
    const pending = this.sent.get(key);
    if (!pending) return; // timed out already, or not ours
    this.sent.delete(key);
    const { resolve, reject } = this.settle(pending);
    if (frame.ok) {
      const queued = frame.queued === true;
      const result = queued ? null : frame.result ?? null;
      resolve(pending.wantReply ? { result, queued } : result);
    } else {
      const error = frame.error ?? {};
      const code: ErrorCode = typeof error.code === "string" ? error.code : "server_error";
      reject(new FloorchannelsError(code, typeof error.message === "string" ? error.message : code, pending.signal));
    }
  }

  private dispatchSignal(frame: SignalFrame): void {
    const kwargs = frame.kwargs && typeof frame.kwargs === "object" ? frame.kwargs : {};
    const set = this.handlers.get(frame.signal);
    if (!set) return;
    for (const handler of Array.from(set)) {
      try {
        const out = handler(kwargs, frame);
        if (out && typeof (out as PromiseLike<unknown>).then === "function") {
          (out as PromiseLike<unknown>).then(undefined, (error) => logHandlerError(frame.signal, error));
        }
      } catch (error) {
        logHandlerError(frame.signal, error);
      }
    }
  }

  // ---- heartbeat ----------------------------------------------------------

  private startHeartbeat(seconds: number): void {
    clearInterval(this.pingTimer);
    const interval = seconds * 1000;
    const timeout = this.heartbeatTimeoutOption ?? interval / 2 + 5000;
    this.pingTimer = setInterval(() => {
      this.send({ type: "ping", id: this.nextPingId++ });
      if (this.deadTimer === undefined) {
        this.deadTimer = setTimeout(() => this.drop("heartbeat timeout"), timeout);
      }
    }, interval);
  }

  // ---- helpers ------------------------------------------------------------

  private send(frame: object): void {
    this.sendRaw(JSON.stringify(frame));
  }

  private sendRaw(text: string): void {
    try {
      this.ws?.send(text);
    } catch (error) {
      console.warn("floorchannels: send failed", error);
    }
  }

  private sendCall(pending: Pending): void {
    this.sent.set(String(pending.id), pending);
    this.sendRaw(pending.frame);
  }

  /** Drop a call from wherever it waits (buffer or sent). */
  private forget(pending: Pending): void {
    this.sent.delete(String(pending.id));
    const i = this.buffer.indexOf(pending);
    if (i >= 0) this.buffer.splice(i, 1);
  }

  /** Stop a call's timer and hand back its settle functions. */
  private settle(pending: Pending): Pick<Pending, "resolve" | "reject"> {
    clearTimeout(pending.timer);
    pending.timer = undefined;
    return pending;
  }

  private failSent(code: ErrorCode, message: string): void {
    const sent = Array.from(this.sent.values());
    this.sent.clear();
    for (const p of sent) this.settle(p).reject(new FloorchannelsError(code, message, p.signal));
  }

  private setState(state: State): void {
    const previous = this.state;
    if (previous === state) return;
    this.state = state;
    this.emit("statechange", { state, previous });
  }

  private emit<K extends keyof ClientEventDetails>(type: K, detail: ClientEventDetails[K]): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function toGrantOrNull(value: unknown): WindowKeyGrant | null {
  try {
    return toGrant(value);
  } catch {
    return null;
  }
}

function logHandlerError(signal: string, error: unknown): void {
  console.error(`floorchannels: a handler of "${signal}" failed`, error);
}
