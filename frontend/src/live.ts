/**
 * `liveList()`: an array of a resource's objects kept in sync with its events.
 *
 *   const notes = liveList(client, "notes", {
 *     refetch: () => fetch("/api/notes/", { headers: client.restHeaders() }).then((r) => r.json()),
 *     onChange: (items) => render(items),
 *   });
 *
 * Items are matched to events by `String(item[key]) === event.pk` (event pks are
 * strings; serializers usually give numbers). Every event is an upsert by pk (or a
 * removal), so an object the page already put in itself, from its own REST response,
 * is never doubled by the event of that change. Events without `data` (id-only
 * resources) are completed with `fetch(pk)`; a `null` answer removes the item.
 * After a reconnect (`resubscribe`) and after any `resync` (messages may have
 * been lost) the list reconciles with `refetch()` (or, without it, by
 * `fetch()`ing each item it holds); events that arrive while a load runs are
 * applied on top of its result, in order.
 *
 * `refetch()` may answer a DRF page (`{results, count?, next?, previous?}`: page
 * number, limit/offset and cursor pagination all put the objects in `results`); the
 * list then keeps `count`/`next`/`previous`, and `loadMore()` follows `next` with
 * the `fetchPage(url)` option. Any other answer is an error, never an empty list.
 */

import type { Client } from "./client.js";
import type { ResourceEvent, SubscribeKwargs, SubscribeParams, Subscription } from "./subscriptions.js";

/**
 * A page of a paginated DRF list: `PageNumberPagination` and `LimitOffsetPagination`
 * answer `{count, next, previous, results}`, `CursorPagination` `{next, previous, results}`.
 */
export interface Page<T> {
  results: readonly T[];
  count?: number | null;
  next?: string | null;
  previous?: string | null;
}

export interface LiveListOptions<T> {
  /** The initial items (say, rendered by the server). Without them, `refetch` (if given) loads the list once subscribed. */
  items?: readonly T[];
  /** The item field that holds the pk (default `"id"`). */
  key?: string;
  /** Follow one object instead of the resource's list. */
  pk?: string | number;
  /** The list's filter parameters, as the REST list's query string (`{project: 3}`): only those objects are live. */
  params?: SubscribeParams;
  /** The URL kwargs of a nested route (`{project_pk: 3}`). */
  kwargs?: SubscribeKwargs;
  /** Keep the items in this order; without it, new items are appended. */
  sort?: (a: T, b: T) => number;
  /** The object with this pk, or `null` when it is gone or not visible: for events without `data`, and to refresh items. */
  fetch?: (pk: string) => Promise<T | null | undefined>;
  /**
   * The whole list, or its first page (a DRF page with `results`): loads it when no
   * `items` are given, and replaces the items after each re-subscribe and resync.
   */
  refetch?: () => Promise<readonly T[] | Page<T>>;
  /** The page at a `next` URL (for `loadMore()`); answers a DRF page. */
  fetchPage?: (url: string) => Promise<Page<T>>;
  /** Called with a copy of the items after each event (`event`), each (re)load and `put()` (`null`). */
  onChange?: (items: T[], event: ResourceEvent<T> | null) => void;
}

export interface LiveList<T> {
  /** A copy of the current items. */
  readonly items: T[];
  /**
   * Resolves once subscribed (and, when the list loads itself with `refetch`,
   * loaded). Rejects with the subscription's `FloorchannelsError`, with the initial
   * `refetch()` error (the subscription then stays, and events apply), or with a
   * `TypeError` when `refetch()` answered neither an array nor a page with `results`.
   */
  readonly ready: Promise<void>;
  /** The subscription, once the server accepted it. */
  readonly subscription: Subscription | undefined;
  /**
   * The `count` of the last page loaded (`undefined` when the list is not paginated or
   * the pagination gives none), plus the objects inserted since (by events or `put()`)
   * and less the items `deleted` events removed: exact again at every reload.
   */
  readonly count: number | undefined;
  /** The `next` URL of the last page loaded; `null` when there is no more (or no pagination). */
  readonly next: string | null;
  /** The `previous` URL of the first page loaded; `null` when none (or no pagination). */
  readonly previous: string | null;
  /**
   * Append the page at `next` (with the `fetchPage` option): resolves `true` when it
   * was added, `false` when there was no `next` or a reload meanwhile replaced the
   * list. Its objects are upserted by pk, and events that arrive while it loads apply on
   * top. A second call while one loads gets the same promise.
   */
  loadMore(): Promise<boolean>;
  /** Insert or replace (by pk) an object the page has itself, say from its own REST response. */
  put(item: T): void;
  /** Unsubscribe and stop updating the items and calling `onChange`. */
  close(): void;
}

/** Words for what a `refetch()` answered, for the error that refuses it. */
function describeShape(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value !== "object") return `a ${typeof value}`;
  const keys = Object.keys(value as object);
  if (!keys.length) return "an object without keys";
  const shown = keys.slice(0, 8).join(", ") + (keys.length > 8 ? ", …" : "");
  return `an object with keys ${shown}`;
}

/** Errors this module already logged, so the reload's own logging does not repeat them. */
const logged = new WeakSet<object>();

export function liveList<T = any>(client: Client, resource: string, options: LiveListOptions<T> = {}): LiveList<T> {
  const key = options.key ?? "id";
  const { sort, onChange } = options;
  let items: T[] = options.items ? options.items.slice() : [];
  if (sort) items.sort(sort);
  let closed = false;
  let subscription: Subscription | undefined;
  /** Bumped by every event of a pk, so that a slow `fetch` never overwrites a newer change. */
  const versions = new Map<string, number>();
  /** Bumped by every (re)load, so that fetches started before it are dropped. */
  let epoch = 0;
  /** Events held back while a load (a refetch or a loadMore) runs. */
  let held: ResourceEvent<T>[] = [];
  /** How many loads hold events back now. */
  let holders = 0;
  /** Bumped when a reload starts: a newer reload, or a loadMore from before it, loses. */
  let loads = 0;
  let paginated = false;
  let count: number | undefined;
  let next: string | null = null;
  let previous: string | null = null;
  let more: Promise<boolean> | undefined;
  const controller = new AbortController();

  const pkOf = (item: T): string => String((item as any)?.[key]);
  const has = (pk: string): boolean => items.some((x) => pkOf(x) === pk);

  const changed = (event: ResourceEvent<T> | null): void => {
    if (closed || !onChange) return;
    try {
      onChange(items.slice(), event);
    } catch (error) {
      console.error(`floorchannels: onChange of the live list "${resource}" failed`, error);
    }
  };

  const put = (pk: string, item: T): void => {
    const i = items.findIndex((x) => pkOf(x) === pk);
    if (i >= 0) items[i] = item;
    else {
      items.push(item);
      if (count !== undefined) count++;
    }
    if (sort) items.sort(sort);
  };

  const remove = (pk: string): void => {
    const before = items.length;
    items = items.filter((x) => pkOf(x) !== pk);
    if (count !== undefined && items.length < before) count = Math.max(0, count - 1);
  };

  /** An array, or a page's `results` (keeping its links); anything else is a TypeError, logged. */
  const unpack = (value: unknown, what: string): { results: readonly T[]; page: Page<T> | null } => {
    if (Array.isArray(value)) return { results: value, page: null };
    if (value !== null && typeof value === "object" && Array.isArray((value as Page<T>).results)) {
      return { results: (value as Page<T>).results, page: value as Page<T> };
    }
    const error = new TypeError(
      `floorchannels: ${what} of the live list "${resource}" answered ${describeShape(value)}: ` +
        `expected an array of objects or a DRF page with a "results" array`,
    );
    console.error(error.message, value);
    logged.add(error);
    throw error;
  };

  const hold = (): void => {
    holders++;
  };
  /** One load is done: when none is left, apply what arrived meanwhile, in order. */
  const release = (): void => {
    holders--;
    if (holders > 0 || closed) return;
    const queue = held;
    held = [];
    queue.forEach(apply);
  };

  /** Fetch one object and put it in (or take it out), unless something newer came meanwhile. */
  const refresh = (pk: string, event: ResourceEvent<T> | null): Promise<void> => {
    const version = versions.get(pk) ?? 0;
    const started = epoch;
    return options.fetch!(pk).then(
      (item) => {
        if (closed || started !== epoch || (versions.get(pk) ?? 0) !== version) return;
        if (item === null || item === undefined) remove(pk);
        else put(pk, item);
        changed(event);
      },
      (error) => console.error(`floorchannels: fetching ${resource} ${pk} failed`, error),
    );
  };

  const apply = (event: ResourceEvent<T>): void => {
    const pk = event.pk;
    versions.set(pk, (versions.get(pk) ?? 0) + 1);
    if (event.action === "deleted") {
      remove(pk);
      changed(event);
    } else if (event.action === "updated" && paginated && next !== null && !has(pk)) {
      // An object on a page not loaded yet (the server told this window about every object
      // of the filter when it subscribed): its page brings it, in its place.
      return;
    } else if (event.data !== undefined) {
      put(pk, event.data);
      changed(event);
    } else if (options.fetch) {
      void refresh(pk, event);
    } else {
      console.warn(`floorchannels: a "${resource}" event has no data and the live list has no fetch option`);
    }
  };

  const onEvent = (event: ResourceEvent<T>): void => {
    if (closed) return;
    if (holders > 0) held.push(event);
    else apply(event);
  };

  /** Reload: the whole list (or its first page) with `refetch`, else each item with `fetch`. */
  const reload = (): Promise<void> => {
    if (closed) return Promise.resolve();
    if (options.refetch) {
      const load = ++loads;
      hold();
      let answer: Promise<readonly T[] | Page<T>>;
      try {
        answer = Promise.resolve(options.refetch());
      } catch (error) {
        answer = Promise.reject(error);
      }
      return answer
        .then((fresh) => {
          if (closed || load !== loads) return;
          const { results, page } = unpack(fresh, "refetch()");
          epoch++;
          paginated = page !== null;
          count = typeof page?.count === "number" ? page.count : undefined;
          next = page?.next ?? null;
          previous = page?.previous ?? null;
          items = Array.from(results);
          if (sort) items.sort(sort);
          changed(null);
        })
        .finally(release);
    }
    if (options.fetch) {
      const pks = new Set(items.map(pkOf));
      if (options.pk !== undefined && options.pk !== null) pks.add(String(options.pk));
      return Promise.all(Array.from(pks, (pk) => refresh(pk, null))).then(() => undefined);
    }
    return Promise.resolve();
  };

  const loadMore = (): Promise<boolean> => {
    if (more) return more;
    if (closed || next === null) return Promise.resolve(false);
    if (!options.fetchPage) {
      return Promise.reject(new TypeError(`floorchannels: loadMore() of the live list "${resource}" needs the fetchPage option`));
    }
    const url = next;
    const load = loads;
    hold();
    let answer: Promise<Page<T>>;
    try {
      answer = Promise.resolve(options.fetchPage(url));
    } catch (error) {
      answer = Promise.reject(error);
    }
    more = answer
      .then((value) => {
        if (closed || load !== loads) return false;
        const { results, page } = unpack(value, "fetchPage()");
        for (const item of results) put(pkOf(item), item);
        if (page) {
          next = page.next ?? null;
          if (typeof page.count === "number") count = page.count;
        } else {
          next = null;
        }
        changed(null);
        return true;
      })
      .finally(() => {
        more = undefined;
        release();
      });
    return more;
  };

  const reloadLogged = (): void => {
    reload().catch((error) => {
      if (!logged.has(error)) console.error(`floorchannels: reloading the live list "${resource}" failed`, error);
    });
  };
  const onResubscribe = (e: Event): void => {
    const detail = (e as CustomEvent).detail;
    if (closed || !subscription || detail?.subscription !== subscription) return;
    reloadLogged();
  };
  /** Any resync: events of this list may be lost too (the client cannot tell which groups carry them). */
  const onResync = (): void => {
    if (closed || !subscription || !subscription.active) return;
    reloadLogged();
  };
  const onSubscriptionError = (e: Event): void => {
    if (subscription && (e as CustomEvent).detail?.subscription === subscription) unlisten();
  };
  const unlisten = (): void => {
    client.removeEventListener("resubscribe", onResubscribe);
    client.removeEventListener("subscriptionerror", onSubscriptionError);
    client.removeEventListener("resync", onResync);
  };
  client.addEventListener("resubscribe", onResubscribe);
  client.addEventListener("subscriptionerror", onSubscriptionError);
  client.addEventListener("resync", onResync);

  const loadsItself = !options.items && !!options.refetch;
  if (loadsItself) hold(); // events wait for the first load
  const ready = client
    .subscribe<T>(
      resource,
      { pk: options.pk, params: options.params, kwargs: options.kwargs, signal: controller.signal },
      onEvent,
    )
    .then(
      (sub) => {
        subscription = sub;
        if (loadsItself) return reload().finally(release);
        return undefined;
      },
      (error) => {
        if (loadsItself) release();
        unlisten();
        throw error;
      },
    );

  return {
    get items() {
      return items.slice();
    },
    ready,
    get subscription() {
      return subscription;
    },
    get count() {
      return count;
    },
    get next() {
      return next;
    },
    get previous() {
      return previous;
    },
    loadMore,
    put(item: T) {
      if (closed) return;
      const pk = pkOf(item);
      versions.set(pk, (versions.get(pk) ?? 0) + 1);
      put(pk, item);
      changed(null);
    },
    close() {
      if (closed) return;
      closed = true;
      ready.catch(() => {}); // closing early is not an error worth reporting
      unlisten();
      controller.abort();
    },
  };
}
