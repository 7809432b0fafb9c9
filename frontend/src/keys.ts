/**
 * Where a client gets its window key when the page did not render one, or when the one it
 * holds has expired: the `getWindowKey` hook, and `keyFromUrl()`, a hook that asks the
 * server's key view (`POST <prefix>/key/`, answering `{window_key, url, expires, protocol}`).
 *
 * A key is a bearer credential with a lifetime: a tab that slept past it cannot reconnect
 * with it. With a hook, the client asks for a new key instead of giving up, and resumes
 * where it stood (the recovery state belongs to the client, not to the key).
 */

import { FloorchannelsError } from "./errors.js";

/** A key and what the server said about it. */
export interface WindowKeyGrant {
  /** The window key. */
  windowKey: string;
  /** Unix seconds after which the key is refused (4410). */
  expires?: number;
  /**
   * The websocket URL to present it to (`ws(s)://`, `http(s)://` or a path). Used unless the
   * client was given a `url` of its own.
   */
  url?: string;
}

/**
 * The hook that fetches a new window key: a key, or a `WindowKeyGrant`. A rejection (or a
 * hook that does not settle within the client's `connectTimeout`) is retried on the
 * reconnect backoff and reported as a `keyerror` event.
 */
export type GetWindowKey = (
  context?: WindowKeyContext,
) => Promise<string | WindowKeyGrant> | string | WindowKeyGrant;

/** What the client tells its `getWindowKey` hook. */
export interface WindowKeyContext {
  /**
   * The key the client holds (expired, or about to), if any: the key view refuses to renew
   * a signed-in window's key for anyone else (`session_ended`).
   */
  previousKey?: string;
}

/** The error a `keyFromUrl()` hook throws when the key view does not answer with a key. */
export class WindowKeyError extends FloorchannelsError {
  /** The HTTP status of the key view's answer; `undefined` when no answer came (network, CORS). */
  readonly status: number | undefined;
  /**
   * The `code` of the key view's refusal, when it gave one: `"session_ended"` means the
   * signed-in user this window was opened for is gone (logged out, another account), which
   * no retry can change, so the client stops.
   */
  readonly serverCode: string | undefined;

  constructor(message: string, status?: number, serverCode?: string) {
    super("key_unavailable", message);
    this.name = "WindowKeyError";
    this.status = status;
    this.serverCode = serverCode;
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

export type HeadersLike = Record<string, string> | [string, string][] | Headers;

export interface KeyRequestOptions {
  /**
   * Request headers, or a function returning them, called for every request (so it can hand
   * over a token that was refreshed since): `{Authorization: "Token …"}` for DRF's
   * TokenAuthentication, `{Authorization: "Bearer …"}` for a JWT.
   */
  headers?: HeadersLike | (() => HeadersLike | Promise<HeadersLike>);
  /**
   * `fetch`'s `credentials` (default `"same-origin"`: the session cookie goes to this origin
   * only). `"include"` sends cookies to another origin too (its CORS answer must allow it).
   */
  credentials?: RequestCredentials;
  /**
   * The cookie holding Django's CSRF token (default `"csrftoken"`, Django's
   * `CSRF_COOKIE_NAME`), sent back as the `X-CSRFToken` header when the key URL is on the
   * page's own origin, as Django's CSRF protection of a session-authenticated POST expects.
   * `false`: never send it. It is never sent to another origin.
   */
  csrfCookie?: string | false;
  /** The request header for the CSRF token (default `"X-CSRFToken"`, Django's `CSRF_HEADER_NAME`). */
  csrfHeader?: string;
  /**
   * The CSRF token itself, when the page has it from elsewhere (the config's `csrf_token`,
   * which works with `CSRF_COOKIE_HTTPONLY` and `CSRF_USE_SESSIONS` too): used instead of
   * the cookie, on the page's own origin only.
   */
  csrfToken?: string;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
}

/**
 * A `getWindowKey` hook that POSTs to the key view at `url` (a path is resolved against the
 * page) and turns its JSON answer into a `WindowKeyGrant`; the websocket URL it names is
 * resolved against the key view's URL, so a page on another origin reaches the right server.
 * Any other answer rejects with a `WindowKeyError` carrying the HTTP status and the
 * server's `detail`.
 */
export function keyFromUrl(url: string, options: KeyRequestOptions = {}): (context?: WindowKeyContext) => Promise<WindowKeyGrant> {
  const { credentials = "same-origin", csrfCookie = "csrftoken", csrfHeader = "X-CSRFToken" } = options;
  return async (context?: WindowKeyContext) => {
    const doFetch = options.fetch ?? globalThis.fetch;
    if (typeof doFetch !== "function") throw new WindowKeyError("floorchannels: no fetch() to ask for a window key");
    const page = globalThis.location?.href;
    const target = new URL(url, page);
    const headers = new Headers({ Accept: "application/json" });
    const extra = typeof options.headers === "function" ? await options.headers() : options.headers;
    if (extra) new Headers(extra).forEach((value, name) => headers.set(name, value));
    if (page && target.origin === new URL(page).origin && !headers.has(csrfHeader)) {
      const token = options.csrfToken || (csrfCookie ? readCookie(csrfCookie) : undefined);
      if (token) headers.set(csrfHeader, token);
    }
    const init: RequestInit = { method: "POST", headers, credentials };
    if (context?.previousKey) {
      headers.set("Content-Type", "application/json");
      init.body = JSON.stringify({ previous_key: context.previousKey });
    }
    let response: Response;
    try {
      response = await doFetch(target.href, init);
    } catch (error) {
      // A network failure, or a CORS refusal (the browser hides which one).
      throw new WindowKeyError(`floorchannels: no answer from the key view ${target.href}: ${describe(error)}`);
    }
    let body: any = null;
    try {
      body = await response.json();
    } catch {
      // not JSON: reported below with the status
    }
    if (!response.ok) {
      const detail = body && typeof body.detail === "string" ? body.detail : response.statusText;
      throw new WindowKeyError(
        `floorchannels: the key view answered ${response.status}${detail ? `: ${detail}` : ""}`,
        response.status,
        body && typeof body.code === "string" ? body.code : undefined,
      );
    }
    if (!body || typeof body.window_key !== "string" || !body.window_key) {
      throw new WindowKeyError(`floorchannels: the key view's answer holds no window_key`, response.status);
    }
    const grant: WindowKeyGrant = { windowKey: body.window_key };
    if (typeof body.expires === "number") grant.expires = body.expires;
    if (typeof body.url === "string" && body.url) grant.url = new URL(body.url, response.url || target.href).href;
    return grant;
  };
}

/** A hook's answer as a grant; throws a `WindowKeyError` for anything else. */
export function toGrant(value: unknown): WindowKeyGrant {
  if (typeof value === "string" && value) return { windowKey: value };
  if (value && typeof value === "object") {
    const v = value as Record<string, unknown>;
    if (typeof v.windowKey === "string" && v.windowKey) {
      const grant: WindowKeyGrant = { windowKey: v.windowKey };
      if (typeof v.expires === "number") grant.expires = v.expires;
      if (typeof v.url === "string" && v.url) grant.url = v.url;
      return grant;
    }
  }
  throw new WindowKeyError("floorchannels: getWindowKey() returned no key (a string or {windowKey})");
}

function readCookie(name: string): string | undefined {
  const cookies = globalThis.document?.cookie;
  if (!cookies) return undefined;
  for (const part of cookies.split(";")) {
    const eq = part.indexOf("=");
    if (eq >= 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
