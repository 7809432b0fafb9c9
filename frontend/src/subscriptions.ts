/**
 * Resource subscriptions: `subscribe` frames, their replies, `event` frames routed
 * to handlers by subscription id, and re-subscribing after every reconnect.
 *
 * The server keeps subscriptions per socket, so a new socket knows none of them:
 * after each `welcome` every live subscription is sent again with a fresh id.
 * A subscription that had been confirmed before is a *re*-subscription: its ok
 * reply dispatches `resubscribe` (the page may have missed events while offline),
 * and its refusal drops it and dispatches `subscriptionerror`.
 *
 *   add() ──► waiting ──(welcome)──► sent ──ok──► live ──(socket lost)──► waiting ──(welcome)──► sent ──ok──► live + resubscribe
 *                                      │                                                           │
 *                                      └─ refused: the promise rejects                             └─ refused: dropped + subscriptionerror
 */

import { FloorchannelsError } from "./errors.js";
import type { ErrorCode } from "./errors.js";

export type ResourceAction = "created" | "updated" | "deleted";

/** One value of a filter parameter, as it would appear in a query string. */
export type QueryValue = string | number | boolean;

/**
 * A list subscription's filter parameters: what the REST list would get as its query
 * string (`{project: 3, tag: ["a", "b"]}` stands for `?project=3&tag=a&tag=b`).
 */
export type SubscribeParams = Record<string, QueryValue | readonly QueryValue[]>;

/** The URL kwargs of a nested route (`{project_pk: 3}` for `/projects/3/tasks/`). */
export type SubscribeKwargs = Record<string, string | number>;

export interface SubscribeOptions {
  /** Subscribe to one object instead of the resource's list. */
  pk?: string | number;
  /**
   * Query parameters for the viewset's filter backends: the subscription hears only about
   * the objects a GET with them would list. Sent again on every re-subscribe.
   */
  params?: SubscribeParams;
  /** URL kwargs of a nested route, as the viewset's `self.kwargs`. Sent again on every re-subscribe. */
  kwargs?: SubscribeKwargs;
  /**
   * Aborting it unsubscribes; before the server's ok reply, the promise then
   * rejects with code `aborted`.
   */
  signal?: AbortSignal;
}

/** An `event` frame as the server sends it. */
export interface EventFrame {
  type: "event";
  subscription: string | number;
  resource: string;
  action: ResourceAction;
  pk: string;
  data?: unknown;
  id?: string | number;
  /** True on the copy that reaches the window whose REST request (`restHeaders()`) made the change. */
  echo?: boolean;
}

/** What a subscription's handler receives for each `event` frame. */
export interface ResourceEvent<T = any> {
  action: ResourceAction;
  /** The object's pk, always a string. */
  pk: string;
  /** The serializer's output for this window's user; `undefined` for `deleted` and for id-only resources. */
  data: T | undefined;
  resource: string;
  /** The message id. */
  id: string | number | undefined;
  /**
   * True when this window's own REST request made the change (it sent `restHeaders()`):
   * the page may have applied the response already. False for everyone else's changes,
   * the same user's other tabs included.
   */
  echo: boolean;
}

export type ResourceEventHandler<T = any> = (event: ResourceEvent<T>, frame: EventFrame) => unknown;

/** `detail` of the client's `resubscribe` event. */
export interface ResubscribeDetail {
  resource: string;
  /** The pk given to `subscribe()`, or `null` for a list subscription. */
  pk: string | number | null;
  subscription: Subscription;
}

/** `detail` of the client's `subscriptionerror` event. */
export interface SubscriptionErrorDetail extends ResubscribeDetail {
  code: ErrorCode;
  message: string;
}

/** What the subscriptions need from the client. */
export interface SubscriptionHost {
  /** A fresh frame id (shared with calls, so replies never collide). */
  nextId(): number;
  /** True when the server has welcomed the current socket. */
  isOpen(): boolean;
  send(frame: object): void;
  emitResubscribe(detail: ResubscribeDetail): void;
  emitSubscriptionError(detail: SubscriptionErrorDetail): void;
}

/** A live subscription, handed out once the server accepted it. */
export class Subscription {
  constructor(
    readonly resource: string,
    readonly pk: string | number | undefined,
    private readonly owner: Subscriptions,
    /** The filter parameters sent with each `subscribe` frame (a frozen copy), if any. */
    readonly params?: Readonly<SubscribeParams>,
    /** The URL kwargs sent with each `subscribe` frame (a frozen copy), if any. */
    readonly kwargs?: Readonly<SubscribeKwargs>,
  ) {}

  /** The id of the `subscribe` frame in force (a new one after each reconnect); `undefined` while not subscribed. */
  get id(): number | undefined {
    return this.owner.frameIdOf(this);
  }

  /** False once unsubscribed, refused on a re-subscribe, or the client closed. */
  get active(): boolean {
    return this.owner.has(this);
  }

  /** Send `unsubscribe` (when connected) and stop the handler at once. Idempotent. */
  unsubscribe(): void {
    this.owner.remove(this);
  }
}

interface Entry {
  sub: Subscription;
  handler: ResourceEventHandler;
  /** The id of the `subscribe` frame sent on the current socket, if any. */
  frameId: number | undefined;
  /** Whether the server has accepted it at least once. */
  confirmed: boolean;
  /** Settles the promise `subscribe()` returned, until the first ok reply. */
  resolve: ((sub: Subscription) => void) | undefined;
  reject: ((error: FloorchannelsError) => void) | undefined;
  abort: { signal: AbortSignal; listener: () => void } | undefined;
  /** Ids of the events already handled, oldest first (created on the first event). */
  seen: Set<string> | undefined;
}

/**
 * Event ids each subscription remembers. The server sends an event once per subscription;
 * a copy can only come after its de-duplication memory was trimmed, within moments.
 */
const RECENT_EVENT_IDS = 256;

export class Subscriptions {
  /** In the order they were made: that is the order they are re-sent. */
  private entries = new Map<Subscription, Entry>();
  /** Frame id (as a string) → entry, for the current socket. */
  private byFrameId = new Map<string, Entry>();

  constructor(private readonly host: SubscriptionHost) {}

  get size(): number {
    return this.entries.size;
  }

  has(sub: Subscription): boolean {
    return this.entries.has(sub);
  }

  frameIdOf(sub: Subscription): number | undefined {
    return this.entries.get(sub)?.frameId;
  }

  add(resource: string, options: SubscribeOptions, handler: ResourceEventHandler): Promise<Subscription> {
    return new Promise((resolve, reject) => {
      if (typeof resource !== "string" || !resource) throw new TypeError("floorchannels: subscribe() needs a resource name");
      if (typeof handler !== "function") throw new TypeError("floorchannels: subscribe() needs a handler");
      const { signal } = options;
      const params = copyParams(options.params);
      const kwargs = copyKwargs(options.kwargs);
      if (signal?.aborted) {
        reject(aborted(resource));
        return;
      }
      const sub = new Subscription(resource, options.pk, this, params, kwargs);
      const entry: Entry = {
        sub,
        handler,
        frameId: undefined,
        confirmed: false,
        resolve,
        reject,
        abort: undefined,
        seen: undefined,
      };
      if (signal) {
        const listener = () => this.remove(sub);
        signal.addEventListener("abort", listener, { once: true });
        entry.abort = { signal, listener };
      }
      this.entries.set(sub, entry);
      if (this.host.isOpen()) this.sendSubscribe(entry);
    });
  }

  remove(sub: Subscription): void {
    const entry = this.entries.get(sub);
    if (!entry) return;
    this.drop(entry);
    if (entry.frameId !== undefined && this.host.isOpen()) {
      this.host.send({ type: "unsubscribe", id: this.host.nextId(), subscription: entry.frameId });
    }
    entry.reject?.(aborted(sub.resource));
    entry.resolve = entry.reject = undefined;
  }

  /**
   * The server welcomed a new socket: (re)send every subscription with a fresh id
   * (except those a `welcome` listener made, already sent on this socket).
   */
  welcomed(): void {
    for (const entry of Array.from(this.entries.values())) {
      if (!this.host.isOpen()) return; // the client closed meanwhile
      if (entry.frameId === undefined && this.entries.has(entry.sub)) this.sendSubscribe(entry);
    }
  }

  /** The socket is gone, and the server forgot its subscriptions. */
  disconnected(): void {
    this.byFrameId.clear();
    for (const entry of this.entries.values()) entry.frameId = undefined;
  }

  /** The client closed for good: drop everything; unconfirmed subscriptions reject with `closed`. */
  closeAll(message: string): void {
    const entries = Array.from(this.entries.values());
    this.byFrameId.clear();
    for (const entry of entries) {
      this.drop(entry);
      entry.reject?.(new FloorchannelsError("closed", message));
      entry.resolve = entry.reject = undefined;
    }
  }

  /** Handle a `reply` frame if it answers a `subscribe`; returns whether it did. */
  reply(frame: any): boolean {
    const entry = this.byFrameId.get(String(frame.id));
    if (!entry || entry.frameId === undefined || String(entry.frameId) !== String(frame.id)) return false;
    const sub = entry.sub;
    const pk = sub.pk ?? null;
    if (frame.ok) {
      const wasConfirmed = entry.confirmed;
      entry.confirmed = true;
      const resolve = entry.resolve;
      entry.resolve = entry.reject = undefined;
      if (resolve) resolve(sub);
      else if (wasConfirmed) this.host.emitResubscribe({ resource: sub.resource, pk, subscription: sub });
      return true;
    }
    const error = frame.error ?? {};
    const code: ErrorCode = typeof error.code === "string" ? error.code : "server_error";
    const message = typeof error.message === "string" ? error.message : code;
    this.drop(entry);
    const reject = entry.reject;
    entry.resolve = entry.reject = undefined;
    if (reject) reject(new FloorchannelsError(code, message));
    else this.host.emitSubscriptionError({ resource: sub.resource, pk, subscription: sub, code, message });
    return true;
  }

  /** Route an `event` frame to the handler of its subscription. */
  event(frame: EventFrame): void {
    const entry = this.byFrameId.get(String(frame.subscription));
    if (!entry) return; // unsubscribed, or from a subscription of an earlier socket
    if (frame.id !== undefined && frame.id !== null) {
      const id = String(frame.id);
      const seen = (entry.seen ??= new Set<string>());
      if (seen.has(id)) return; // a copy: the handler already had it
      seen.add(id);
      if (seen.size > RECENT_EVENT_IDS) seen.delete(seen.values().next().value as string);
    }
    const event: ResourceEvent = {
      action: frame.action,
      pk: String(frame.pk),
      data: frame.data,
      resource: frame.resource,
      id: frame.id,
      echo: frame.echo === true,
    };
    try {
      const out = entry.handler(event, frame);
      if (out && typeof (out as PromiseLike<unknown>).then === "function") {
        (out as PromiseLike<unknown>).then(undefined, (error) => logHandlerError(frame.resource, error));
      }
    } catch (error) {
      logHandlerError(frame.resource, error);
    }
  }

  private sendSubscribe(entry: Entry): void {
    if (entry.frameId !== undefined) this.byFrameId.delete(String(entry.frameId));
    const id = this.host.nextId();
    entry.frameId = id;
    this.byFrameId.set(String(id), entry);
    const frame: Record<string, unknown> = { type: "subscribe", id, resource: entry.sub.resource };
    if (entry.sub.pk !== undefined && entry.sub.pk !== null) frame.pk = entry.sub.pk;
    if (entry.sub.params) frame.params = entry.sub.params;
    if (entry.sub.kwargs) frame.kwargs = entry.sub.kwargs;
    this.host.send(frame);
  }

  /** Forget an entry: no more handler calls, no more re-sends. */
  private drop(entry: Entry): void {
    this.entries.delete(entry.sub);
    if (entry.frameId !== undefined) this.byFrameId.delete(String(entry.frameId));
    if (entry.abort) {
      entry.abort.signal.removeEventListener("abort", entry.abort.listener);
      entry.abort = undefined;
    }
  }
}

function isQueryValue(value: unknown): value is QueryValue {
  return typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A frozen copy of `params` (so a later change to the caller's object cannot change what a
 * re-subscribe sends), or `undefined` when there are none. Throws a TypeError naming the
 * first value a query string could not carry.
 */
function copyParams(params: SubscribeParams | undefined): Readonly<SubscribeParams> | undefined {
  if (params === undefined || params === null) return undefined;
  if (!isPlainObject(params)) throw new TypeError("floorchannels: subscribe() params must be an object");
  const copy: Record<string, QueryValue | readonly QueryValue[]> = {};
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    if (Array.isArray(value) ? !value.every(isQueryValue) : !isQueryValue(value)) {
      throw new TypeError(`floorchannels: subscribe() params.${name} must be a string, number, boolean or an array of them`);
    }
    copy[name] = Array.isArray(value) ? Object.freeze(value.slice()) : value;
  }
  return Object.keys(copy).length ? Object.freeze(copy) : undefined;
}

/** A frozen copy of `kwargs`, or `undefined` when there are none; throws a TypeError for a value that is not a string or number. */
function copyKwargs(kwargs: SubscribeKwargs | undefined): Readonly<SubscribeKwargs> | undefined {
  if (kwargs === undefined || kwargs === null) return undefined;
  if (!isPlainObject(kwargs)) throw new TypeError("floorchannels: subscribe() kwargs must be an object");
  const copy: Record<string, string | number> = {};
  for (const [name, value] of Object.entries(kwargs)) {
    if (value === undefined) continue;
    if (typeof value !== "string" && !(typeof value === "number" && Number.isFinite(value))) {
      throw new TypeError(`floorchannels: subscribe() kwargs.${name} must be a string or a number`);
    }
    copy[name] = value;
  }
  return Object.keys(copy).length ? Object.freeze(copy) : undefined;
}

function aborted(resource: string): FloorchannelsError {
  return new FloorchannelsError("aborted", `floorchannels: the subscription to ${resource} was cancelled`);
}

function logHandlerError(resource: string, error: unknown): void {
  console.error(`floorchannels: an event handler of "${resource}" failed`, error);
}
