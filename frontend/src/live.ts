/**
 * `liveList()`: an array of a resource's objects kept in sync with its events.
 *
 *   const notes = liveList(client, "notes", {
 *     refetch: () => fetch("/api/notes/", { headers: client.restHeaders() }).then((r) => r.json()),
 *     onChange: (items) => render(items),
 *   });
 *
 * Items are matched to events by `String(item[key]) === event.pk` (event pks are
 * strings; serializers usually give numbers). Events without `data` (id-only
 * resources) are completed with `fetch(pk)`; a `null` answer removes the item.
 * After a reconnect (`resubscribe`) and after any `resync` (messages may have
 * been lost) the list reconciles with `refetch()` (or, without it, by
 * `fetch()`ing each item it holds); events that arrive while a refetch runs are
 * applied on top of its result, in order.
 */

import type { Client } from "./client.js";
import type { ResourceEvent, Subscription } from "./subscriptions.js";

export interface LiveListOptions<T> {
  /** The initial items (say, rendered by the server). Without them, `refetch` (if given) loads the list once subscribed. */
  items?: readonly T[];
  /** The item field that holds the pk (default `"id"`). */
  key?: string;
  /** Follow one object instead of the resource's list. */
  pk?: string | number;
  /** Keep the items in this order; without it, new items are appended. */
  sort?: (a: T, b: T) => number;
  /** The object with this pk, or `null` when it is gone or not visible: for events without `data`, and to refresh items. */
  fetch?: (pk: string) => Promise<T | null | undefined>;
  /** The whole list: loads it when no `items` are given, and replaces the items after each re-subscribe and resync. */
  refetch?: () => Promise<readonly T[]>;
  /** Called with a copy of the items after each event (`event`) and each (re)load (`null`). */
  onChange?: (items: T[], event: ResourceEvent<T> | null) => void;
}

export interface LiveList<T> {
  /** A copy of the current items. */
  readonly items: T[];
  /**
   * Resolves once subscribed (and, when the list loads itself with `refetch`,
   * loaded). Rejects with the subscription's `FloorchannelsError`, or with the
   * initial `refetch()` error (the subscription then stays, and events apply).
   */
  readonly ready: Promise<void>;
  /** The subscription, once the server accepted it. */
  readonly subscription: Subscription | undefined;
  /** Unsubscribe and stop updating the items and calling `onChange`. */
  close(): void;
}

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
  /** Events held back while a (re)load runs; `null` when none runs. */
  let held: ResourceEvent<T>[] | null = null;
  let loads = 0;
  const controller = new AbortController();

  const pkOf = (item: T): string => String((item as any)?.[key]);

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
    else items.push(item);
    if (sort) items.sort(sort);
  };

  const remove = (pk: string): void => {
    items = items.filter((x) => pkOf(x) !== pk);
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
    if (held) held.push(event);
    else apply(event);
  };

  /** Reload: the whole list with `refetch`, else each item with `fetch`. */
  const reload = (): Promise<void> => {
    if (closed) return Promise.resolve();
    if (options.refetch) {
      const load = ++loads;
      held ??= [];
      return options.refetch().then(
        (fresh) => {
          if (closed || load !== loads) return;
          epoch++;
          items = Array.from(fresh);
          if (sort) items.sort(sort);
          const queue = held ?? [];
          held = null;
          changed(null);
          queue.forEach(apply);
        },
        (error) => {
          if (closed || load !== loads) return;
          const queue = held ?? [];
          held = null;
          queue.forEach(apply);
          throw error;
        },
      );
    }
    if (options.fetch) {
      const pks = new Set(items.map(pkOf));
      if (options.pk !== undefined && options.pk !== null) pks.add(String(options.pk));
      return Promise.all(Array.from(pks, (pk) => refresh(pk, null))).then(() => undefined);
    }
    return Promise.resolve();
  };

  const reloadLogged = (): void => {
    reload().catch((error) => console.error(`floorchannels: reloading the live list "${resource}" failed`, error));
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
  if (loadsItself) held = []; // events wait for the first load
  const ready = client
    .subscribe<T>(resource, { pk: options.pk, signal: controller.signal }, onEvent)
    .then(
      (sub) => {
        subscription = sub;
        if (loadsItself) return reload();
        return undefined;
      },
      (error) => {
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
    close() {
      if (closed) return;
      closed = true;
      ready.catch(() => {}); // closing early is not an error worth reporting
      unlisten();
      controller.abort();
    },
  };
}
