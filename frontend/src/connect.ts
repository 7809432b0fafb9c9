/**
 * `connect()`: the page's default client, configured from the template tag's
 * config element, with options taking precedence.
 */

import { Client } from "./client.js";
import type { ClientOptions } from "./client.js";
import { readPageConfig, websocketUrl } from "./config.js";
import { installDomSignals } from "./dom.js";

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
}

let defaultClient: Client | null = null;

/**
 * Connect to the floorchannels server. Calling it again returns the same default
 * client (options are then ignored, with a warning) unless that client was closed
 * with `close()`, or `{shared: false}` asks for a new one.
 */
export function connect(options: ConnectOptions = {}): Client {
  const { shared = true, builtins = true, document: doc = globalThis.document, ...clientOptions } = options;
  if (shared && defaultClient && defaultClient.closedBy !== "client") {
    if (Object.keys(clientOptions).length) {
      console.warn("floorchannels: connect() already made the default client; options ignored (pass shared: false for another one)");
    }
    return defaultClient;
  }
  const config = readPageConfig(doc) ?? {};
  const url = clientOptions.url ?? (typeof config.url === "string" ? config.url : DEFAULT_URL);
  const windowKey = clientOptions.windowKey ?? (typeof config.window_key === "string" ? config.window_key : "");
  if (!windowKey) {
    throw new Error("floorchannels: no window key: render the config tag in the page or pass {windowKey}");
  }
  const base = doc?.defaultView?.location.href ?? globalThis.location?.href;
  const client = new Client({ ...clientOptions, url: websocketUrl(url, base), windowKey });
  if (builtins && doc) installDomSignals(client, doc);
  if (shared) defaultClient = client;
  return client;
}

/** The default client if `connect()` made one, else `null`. */
export function defaultClientOrNull(): Client | null {
  return defaultClient;
}

/** Forget the default client (tests, or a page that manages clients itself). Does not close it. */
export function resetDefaultClient(): void {
  defaultClient = null;
}
