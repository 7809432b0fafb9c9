/**
 * The page configuration rendered by the Django template tag:
 *
 *   <script id="floorchannels-config" type="application/json">
 *     {"url": "/ws/floorchannels/", "window_key": "..."}
 *   </script>
 */

export const CONFIG_ELEMENT_ID = "floorchannels-config";

export interface PageConfig {
  url?: string;
  window_key?: string;
  /** Optional: `false` turns off connecting on page load (see README). */
  auto_connect?: boolean;
  /**
   * Optional: the key view's URL; `connect()` asks it for a new key when the page's key
   * has expired (see `keyFromUrl`).
   */
  key_url?: string;
  /** Optional: the CSRF token `connect()` sends to `key_url` (else it reads the CSRF cookie). */
  csrf_token?: string;
  [key: string]: unknown;
}

/** The parsed config element, or `null` when the page has none (or it is not valid JSON). */
export function readPageConfig(doc: Document | undefined = globalThis.document): PageConfig | null {
  const el = doc?.getElementById(CONFIG_ELEMENT_ID);
  if (!el) return null;
  try {
    const value: unknown = JSON.parse(el.textContent || "");
    if (value && typeof value === "object" && !Array.isArray(value)) return value as PageConfig;
  } catch {
    // fall through
  }
  console.error(`floorchannels: #${CONFIG_ELEMENT_ID} does not hold a JSON object`);
  return null;
}

/**
 * A websocket URL from a path (`/ws/floorchannels/`, resolved against the page,
 * `wss:` on https pages) or an absolute URL (`ws:`, `wss:`, or `http(s):` mapped
 * to `ws(s):`).
 */
export function websocketUrl(url: string, base: string | undefined = globalThis.location?.href): string {
  const resolved = new URL(url, base);
  if (resolved.protocol === "https:") resolved.protocol = "wss:";
  else if (resolved.protocol === "http:") resolved.protocol = "ws:";
  if (resolved.protocol !== "ws:" && resolved.protocol !== "wss:") {
    throw new TypeError(`floorchannels: not a websocket URL: ${url}`);
  }
  return resolved.href;
}
