/**
 * `connect()`: the page's default client, configured from the template tag's
 * config element, with options taking precedence.
 *
 * A key URL (the `keyUrl` option, or the config's `key_url`) becomes a `getWindowKey`
 * hook, so a rendered page renews its key when it expires, and a single-page app with no
 * config gets its first key (and its websocket URL) from the key view.
 */

import { Client } from "./client.js";
import type { ClientOptions } from "./client.js";
import { readPageConfig, websocketUrl } from "./config.js";
import { installDomSignals } from "./dom.js";
import { keyFromUrl, toGrant } from "./keys.js";
import type { GetWindowKey, KeyRequestOptions } from "./keys.js";

export const DEFAULT_URL = "/ws/floorchannels/";

export interface ConnectOptions extends Partial<ClientOptions> {
  /**
   * `true` (default): return the page's default client, creating it on first use.
   * `false`: always create a new, separate client.
   */
  shared?: boolean;
  /** Register the built-in `fc.dom.*`, `fc.page.*` and `fc.notify` signals (default true). */
  builtins?: boolean;
  /** The document to read the config from and to act on (default: the global one). */
  document?: Document;
  /**
   * The key view's URL (default: the config's `key_url`): `getWindowKey` becomes
   * `keyFromUrl(keyUrl, keyRequest)` unless a `getWindowKey` is given.
   */
  keyUrl?: string;
  /** How `keyUrl` is asked: headers (a token), credentials, CSRF cookie (see `keyFromUrl`). */
  keyRequest?: KeyRequestOptions;
}

let defaultClient: Client | null = null;

/**
 * Connect to the floorchannels server. Calling it again returns the same default
 * client (options are then ignored, with a warning) unless that client was closed
 * with `close()`, or `{shared: false}` asks for a new one.
 */
export function connect(options: ConnectOptions = {}): Client {
  const {
    shared = true,
    builtins = true,
    document: doc = globalThis.document,
    keyUrl,
    keyRequest,
    ...clientOptions
  } = options;
  if (shared && defaultClient && defaultClient.closedBy !== "client") {
    if (Object.keys(clientOptions).length) {
      console.warn("floorchannels: connect() already made the default client; options ignored (pass shared: false for another one)");
    }
    return defaultClient;
  }
  const config = readPageConfig(doc) ?? {};
  const base = doc?.defaultView?.location.href ?? globalThis.location?.href;
  const configKeyUrl = typeof config.key_url === "string" && config.key_url ? config.key_url : undefined;
  const keyView = keyUrl ?? configKeyUrl;
  let getWindowKey: GetWindowKey | undefined = clientOptions.getWindowKey;
  if (!getWindowKey && keyView) {
    const csrfToken = typeof config.csrf_token === "string" && config.csrf_token ? config.csrf_token : undefined;
    getWindowKey = keyFromUrl(new URL(keyView, base).href, { csrfToken, ...keyRequest });
  }
  const configUrl = typeof config.url === "string" ? config.url : undefined;
  const url = clientOptions.url ?? configUrl;
  const windowKey = clientOptions.windowKey ?? (typeof config.window_key === "string" ? config.window_key : "");
  if (!windowKey && !getWindowKey) {
    throw new Error("floorchannels: no window key: render the config tag in the page, or pass {windowKey}, {keyUrl} or {getWindowKey}");
  }
  const client = new Client({
    ...clientOptions,
    // No URL given: the one getWindowKey's answer names, else the default path on this page.
    url: url === undefined && getWindowKey ? undefined : websocketUrl(url ?? DEFAULT_URL, base),
    windowKey,
    getWindowKey: url === undefined && getWindowKey ? withDefaultUrl(getWindowKey, () => websocketUrl(DEFAULT_URL, base)) : getWindowKey,
  });
  if (builtins && doc) installDomSignals(client, doc);
  if (shared) defaultClient = client;
  return client;
}

/** `hook`, its answers completed with `url` when they name no websocket URL. */
function withDefaultUrl(hook: GetWindowKey, url: () => string): GetWindowKey {
  return async (context) => {
    const grant = toGrant(await hook(context));
    return grant.url ? grant : { ...grant, url: url() };
  };
}

/** The default client if `connect()` made one, else `null`. */
export function defaultClientOrNull(): Client | null {
  return defaultClient;
}

/** Forget the default client (tests, or a page that manages clients itself). Does not close it. */
export function resetDefaultClient(): void {
  defaultClient = null;
}
