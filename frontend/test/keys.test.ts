import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Client } from "../src/client";
import type { ClientOptions } from "../src/client";
import { connect, resetDefaultClient } from "../src/connect";
import { FloorchannelsError } from "../src/errors";
import { WindowKeyError, keyFromUrl } from "../src/keys";
import type { WindowKeyGrant } from "../src/keys";
import { FakeSocket } from "./fake-socket";

const WS_URL = "ws://example.test/ws/floorchannels/";
const clients: Client[] = [];

function makeClient(options: Partial<ClientOptions> = {}): Client {
  const client = new Client({ url: WS_URL, WebSocket: FakeSocket, random: () => 0, ...options });
  clients.push(client);
  return client;
}

function events(client: Client, type: string): any[] {
  const seen: any[] = [];
  client.addEventListener(type, (e) => seen.push((e as CustomEvent).detail));
  return seen;
}

/** A hook whose answers the test hands out one by one. */
function scriptedHook() {
  const waiting: { resolve: (v: string | WindowKeyGrant) => void; reject: (e: unknown) => void }[] = [];
  const hook = vi.fn(
    () =>
      new Promise<string | WindowKeyGrant>((resolve, reject) => {
        waiting.push({ resolve, reject });
      }),
  );
  return {
    hook,
    async answer(value: string | WindowKeyGrant) {
      waiting.shift()!.resolve(value);
      await vi.advanceTimersByTimeAsync(0);
    },
    async fail(error: unknown) {
      waiting.shift()!.reject(error);
      await vi.advanceTimersByTimeAsync(0);
    },
  };
}

const now = () => Math.floor(Date.now() / 1000);

beforeEach(() => {
  FakeSocket.reset();
  vi.useFakeTimers();
  vi.spyOn(console, "warn").mockImplementation(() => {});
});
afterEach(() => {
  clients.splice(0).forEach((c) => c.close());
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("getWindowKey: the first key", () => {
  it("asks the hook before opening any socket, then connects with its key and URL", async () => {
    const keys = scriptedHook();
    const client = makeClient({ url: undefined, getWindowKey: keys.hook });
    const refreshes = events(client, "refresh");
    expect(client.state).toBe("connecting");
    expect(keys.hook).toHaveBeenCalledTimes(1);
    expect(FakeSocket.instances).toHaveLength(0);
    const pending = client.call("demo.add", { a: 1 }); // buffered meanwhile
    await keys.answer({ windowKey: "k1", expires: now() + 3600, url: "http://api.test:8001/ws/floorchannels/" });
    const ws = FakeSocket.last;
    expect(ws.url).toBe("ws://api.test:8001/ws/floorchannels/");
    expect(client.url).toBe("ws://api.test:8001/ws/floorchannels/");
    expect(refreshes).toEqual([{ windowKey: "k1", keyExpires: now() + 3600, source: "getWindowKey" }]);
    ws.open();
    expect(ws.sent[0]).toEqual({ type: "hello", window_key: "k1", protocol: 2 });
    ws.welcome();
    const call = ws.sentOfType("call")[0];
    ws.receive({ type: "reply", id: call.id, ok: true, result: 2 });
    await expect(pending).resolves.toBe(2);
  });

  it("accepts a bare string as the key", async () => {
    const client = makeClient({ getWindowKey: async () => "plain" });
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open();
    expect(FakeSocket.last.sent[0].window_key).toBe("plain");
    expect(client.url).toBe(WS_URL);
  });

  it("keeps a url option over the one the hook names", async () => {
    makeClient({ getWindowKey: async () => ({ windowKey: "k", url: "ws://other.test/ws/" }) });
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.last.url).toBe(WS_URL);
  });

  it("needs a key or a hook", () => {
    expect(() => new Client({ url: WS_URL, WebSocket: FakeSocket })).toThrow(/no window key/);
    expect(() => new Client({ windowKey: "k", WebSocket: FakeSocket })).toThrow(/no websocket url/);
  });

  it("reports a hook answer without a URL when none was configured", async () => {
    const client = makeClient({ url: undefined, getWindowKey: async () => "k" });
    const errors = events(client, "keyerror");
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.instances).toHaveLength(0);
    expect(errors).toHaveLength(1);
    expect(String(errors[0].error)).toMatch(/no websocket url/);
  });
});

describe("getWindowKey: an expired key (4410)", () => {
  it("is final without a hook, with the server's reason", () => {
    const client = makeClient({ windowKey: "old" });
    const refused = events(client, "refused");
    FakeSocket.last.open();
    FakeSocket.last.serverClose(4410, "window key expired");
    expect(client.state).toBe("closed");
    expect(refused).toEqual([{ code: 4410, reason: "window key expired" }]);
  });

  it("fetches a new key after the backoff delay and resumes where the page stood", async () => {
    const keys = scriptedHook();
    const client = makeClient({ windowKey: "old", getWindowKey: keys.hook, backoffMin: 500 });
    const disconnects = events(client, "disconnect");
    const refused = events(client, "refused");
    const seen: number[] = [];
    client.on("chat", ({ n }) => void seen.push(n));
    let ws = FakeSocket.last;
    ws.accept({ e: "E1", seqs: { G: "0-0" } });
    ws.receive({ type: "signal", signal: "chat", kwargs: { n: 1 }, id: "m1", g: "G", seq: "1-0", e: "E1" });
    ws.receive({ type: "signal", signal: "chat", kwargs: { n: 2 }, id: "m2", g: "G", seq: "2-0", e: "E1" });
    ws.serverClose(1006); // the tab slept; its key expired meanwhile
    vi.advanceTimersByTime(500);
    ws = FakeSocket.last;
    ws.open();
    expect(ws.sent[0]).toMatchObject({ window_key: "old", resume: { e: "E1", seqs: { G: "2-0" } } });
    ws.serverClose(4410, "window key expired");
    expect(client.state).toBe("connecting");
    expect(refused).toEqual([]);
    expect(disconnects.at(-1)).toMatchObject({ code: 4410, reason: "window key expired" });
    expect(keys.hook).not.toHaveBeenCalled(); // not in the same instant: after the delay
    vi.advanceTimersByTime(disconnects.at(-1).delay);
    expect(keys.hook).toHaveBeenCalledTimes(1);
    const sockets = FakeSocket.instances.length;
    await keys.answer({ windowKey: "new", expires: now() + 3600 });
    expect(FakeSocket.instances).toHaveLength(sockets + 1);
    ws = FakeSocket.last;
    ws.open();
    // A new key, the same recovery state: the server replays what was missed.
    expect(ws.sent[0]).toEqual({ type: "hello", window_key: "new", protocol: 2, resume: { e: "E1", seqs: { G: "2-0" } } });
    ws.welcome({ e: "E1", seqs: { G: "4-0" } });
    ws.receive({ type: "signal", signal: "chat", kwargs: { n: 2 }, id: "m2", g: "G", seq: "2-0", e: "E1" });
    ws.receive({ type: "signal", signal: "chat", kwargs: { n: 3 }, id: "m3", g: "G", seq: "3-0", e: "E1" });
    expect(seen).toEqual([1, 2, 3]);
    expect(client.state).toBe("open");
  });

  it("never loops fast when every new key is refused too", async () => {
    const hook = vi.fn(async () => "still-expired");
    makeClient({ windowKey: "old", getWindowKey: hook, backoffMin: 500, backoffMax: 20000, random: () => 1 });
    // Full jitter at its top: 1 s, 2 s, 4 s, 8 s, 16 s, then 20 s each.
    for (const delay of [1000, 2000, 4000, 8000, 16000, 20000, 20000]) {
      const ws = FakeSocket.last;
      ws.open();
      ws.serverClose(4410, "window key expired");
      const before = hook.mock.calls.length;
      await vi.advanceTimersByTimeAsync(delay - 1);
      expect(hook).toHaveBeenCalledTimes(before);
      await vi.advanceTimersByTimeAsync(1);
      expect(hook).toHaveBeenCalledTimes(before + 1);
      expect(FakeSocket.last).not.toBe(ws);
    }
  });

  it("keeps 4401 and 4403 final with a hook: a new key cannot change who the user is", () => {
    for (const code of [4401, 4403]) {
      const hook = vi.fn(async () => "k");
      const client = makeClient({ windowKey: "old", getWindowKey: hook });
      FakeSocket.last.open();
      FakeSocket.last.serverClose(code, "why");
      expect(client.state).toBe("closed");
      vi.advanceTimersByTime(60000);
      expect(hook).not.toHaveBeenCalled();
    }
  });
});

describe("getWindowKey: a key about to expire", () => {
  it("is renewed before a reconnect when it expires within keyRenewBefore", async () => {
    const keys = scriptedHook();
    const client = makeClient({ windowKey: "old", getWindowKey: keys.hook, keyRenewBefore: 60 });
    let ws = FakeSocket.last;
    ws.accept({ key_expires: now() + 3600 });
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(500);
    expect(keys.hook).not.toHaveBeenCalled(); // an hour left: the held key is used
    ws = FakeSocket.last;
    ws.open();
    expect(ws.sent[0].window_key).toBe("old");
    ws.welcome({ key_expires: now() + 30 });
    expect(client.keyExpires).toBe(now() + 30);
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(500);
    expect(keys.hook).toHaveBeenCalledTimes(1);
    const count = FakeSocket.instances.length;
    await keys.answer("fresh");
    expect(FakeSocket.instances).toHaveLength(count + 1);
    FakeSocket.last.open();
    expect(FakeSocket.last.sent[0].window_key).toBe("fresh");
  });

  it("uses a key the server refreshed over the socket without asking the hook", async () => {
    const hook = vi.fn(async () => "from-hook");
    const client = makeClient({ windowKey: "old", getWindowKey: hook });
    const refreshes = events(client, "refresh");
    const ws = FakeSocket.last;
    ws.accept({ key_expires: now() + 10 });
    ws.receive({ type: "refresh", window_key: "refreshed", key_expires: now() + 3600 });
    expect(refreshes).toEqual([{ windowKey: "refreshed", keyExpires: now() + 3600, source: "server" }]);
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(500);
    FakeSocket.last.open();
    expect(FakeSocket.last.sent[0].window_key).toBe("refreshed");
    expect(hook).not.toHaveBeenCalled();
  });
});

describe("getWindowKey: failures", () => {
  it("reports each failure as keyerror and asks again on the backoff schedule", async () => {
    const keys = scriptedHook();
    const client = makeClient({ url: undefined, getWindowKey: keys.hook, random: () => 1 });
    const errors = events(client, "keyerror");
    const boom = new Error("offline");
    await keys.fail(boom);
    expect(errors).toEqual([{ error: boom, delay: 1000 }]);
    expect(client.state).toBe("connecting");
    await vi.advanceTimersByTimeAsync(999);
    expect(keys.hook).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(keys.hook).toHaveBeenCalledTimes(2);
    await keys.fail(boom);
    expect(errors[1].delay).toBe(2000);
    await vi.advanceTimersByTimeAsync(2000);
    await keys.answer({ windowKey: "k", url: WS_URL });
    expect(FakeSocket.instances).toHaveLength(1);
    FakeSocket.last.accept();
    expect(client.state).toBe("open");
  });

  it("gives up on a hook that does not answer within connectTimeout, and ignores its late answer", async () => {
    const keys = scriptedHook();
    const client = makeClient({ url: undefined, getWindowKey: keys.hook, connectTimeout: 5000 });
    const errors = events(client, "keyerror");
    await vi.advanceTimersByTimeAsync(5000);
    expect(errors).toHaveLength(1);
    expect(errors[0].error).toBeInstanceOf(WindowKeyError);
    expect(String(errors[0].error.message)).toMatch(/did not answer within 5000 ms/);
    await keys.answer({ windowKey: "late", url: WS_URL });
    expect(FakeSocket.instances).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(errors[0].delay);
    await keys.answer({ windowKey: "on-time", url: WS_URL });
    FakeSocket.last.open();
    expect(FakeSocket.last.sent[0].window_key).toBe("on-time");
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it("reports a hook that returns no key, or throws synchronously", async () => {
    let calls = 0;
    const client = makeClient({
      getWindowKey: (() => {
        calls += 1;
        if (calls === 1) throw new Error("sync");
        return { nope: true };
      }) as any,
    });
    const errors = events(client, "keyerror");
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(errors[0].delay);
    expect(errors.map((e) => String(e.error.message))).toEqual(["sync", expect.stringMatching(/returned no key/)]);
    expect(FakeSocket.instances).toHaveLength(0);
  });

  it("close() while the hook is out: its answer opens nothing", async () => {
    const keys = scriptedHook();
    const client = makeClient({ getWindowKey: keys.hook });
    client.close();
    await keys.answer("k");
    expect(FakeSocket.instances).toHaveLength(0);
    expect(client.state).toBe("closed");
  });
});

describe("close reasons and a replaced window", () => {
  it("puts the server's reason in the error of the calls that were waiting", async () => {
    const client = makeClient({ windowKey: "k" });
    FakeSocket.last.open();
    const waiting = client.call("a");
    FakeSocket.last.serverClose(4403, "key was issued to another user or the session has ended");
    const error = await waiting.catch((e) => e);
    expect(error).toBeInstanceOf(FloorchannelsError);
    expect(error.code).toBe("closed");
    expect(error.message).toBe(
      "floorchannels: the server refused the window key (4403: key was issued to another user or the session has ended)",
    );
  });

  it("4409 without a hook: closed for good, with a replaced event and no refused event", async () => {
    const client = makeClient({ windowKey: "k" });
    const replaced = events(client, "replaced");
    const refused = events(client, "refused");
    FakeSocket.last.accept();
    FakeSocket.last.serverClose(4409, "replaced by a newer connection of this window");
    expect(client.state).toBe("closed");
    expect(client.closedBy).toBe(4409);
    expect(replaced).toEqual([{ code: 4409, reason: "replaced by a newer connection of this window", final: true }]);
    expect(refused).toEqual([]);
    const error = await client.call("x").catch((e) => e);
    expect(error.code).toBe("closed");
    expect(error.message).toBe(
      "floorchannels: a newer connection of this window replaced this one (4409: replaced by a newer connection of this window)",
    );
    vi.advanceTimersByTime(60000);
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it("4409 with a hook: goes on as a new window with a new key, resuming", async () => {
    const keys = scriptedHook();
    const client = makeClient({ windowKey: "duplicated", getWindowKey: keys.hook });
    const replaced = events(client, "replaced");
    let ws = FakeSocket.last;
    ws.accept({ window_id: "w-shared", e: "E", seqs: { U: "3-0" } });
    ws.serverClose(4409, "replaced by a newer connection of this window");
    expect(replaced).toEqual([{ code: 4409, reason: "replaced by a newer connection of this window", final: false }]);
    expect(client.state).toBe("connecting");
    await vi.advanceTimersByTimeAsync(500);
    expect(keys.hook).toHaveBeenCalledTimes(1);
    await keys.answer("own-key");
    ws = FakeSocket.last;
    ws.open();
    expect(ws.sent[0]).toEqual({ type: "hello", window_key: "own-key", protocol: 2, resume: { e: "E", seqs: { U: "3-0" } } });
    ws.welcome({ window_id: "w-new" });
    expect(client.windowId).toBe("w-new");
  });

  it("4409 with a hook that hands back the page's first key after a refresh: closed too", async () => {
    const hook = vi.fn(async () => "page-key");
    const client = makeClient({ windowKey: "page-key", getWindowKey: hook });
    FakeSocket.last.accept();
    FakeSocket.last.receive({ type: "refresh", window_key: "refreshed", key_expires: now() + 3600 });
    FakeSocket.last.serverClose(4409, "replaced by a newer connection of this window");
    await vi.advanceTimersByTimeAsync(500);
    expect(client.state).toBe("closed");
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it("4409 with a hook that hands back the same key: closed, so two tabs never take the window from each other in turn", async () => {
    const hook = vi.fn(async () => "duplicated");
    const client = makeClient({ windowKey: "duplicated", getWindowKey: hook });
    const replaced = events(client, "replaced");
    FakeSocket.last.accept();
    FakeSocket.last.serverClose(4409, "replaced by a newer connection of this window");
    await vi.advanceTimersByTimeAsync(500);
    expect(hook).toHaveBeenCalledTimes(1);
    expect(client.state).toBe("closed");
    expect(replaced.map((r) => r.final)).toEqual([false, true]);
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it("passes the reason of a transient close to disconnect", () => {
    const client = makeClient({ windowKey: "k" });
    const disconnects = events(client, "disconnect");
    FakeSocket.last.accept();
    FakeSocket.last.serverClose(4500, "server cannot reach its channel layer");
    expect(disconnects).toEqual([{ code: 4500, reason: "server cannot reach its channel layer", delay: 500 }]);
  });
});

/** A fetch stand-in that records requests and answers with `respond`. */
function fakeFetch(respond: (url: string, init: RequestInit) => Response | Promise<Response>) {
  const requests: { url: string; init: RequestInit; headers: Headers }[] = [];
  const fetchFn = vi.fn(async (input: any, init: any = {}) => {
    requests.push({ url: String(input), init, headers: new Headers(init.headers) });
    return respond(String(input), init);
  });
  return { fetch: fetchFn as unknown as typeof fetch, requests };
}

function jsonResponse(body: unknown, status = 200, url = ""): Response {
  const response = new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
  if (url) Object.defineProperty(response, "url", { value: url });
  return response;
}

describe("keyFromUrl", () => {
  afterEach(() => {
    document.cookie = "csrftoken=; expires=Thu, 01 Jan 1970 00:00:00 GMT";
  });

  it("POSTs to the key view with the app's headers and returns a grant", async () => {
    let token = "t1";
    const { fetch, requests } = fakeFetch((url) =>
      jsonResponse({ window_key: "K", url: "/ws/floorchannels/", expires: 1900000000, protocol: 1 }, 200, url),
    );
    const hook = keyFromUrl("https://api.test/floorchannels/key/", {
      headers: () => ({ Authorization: `Token ${token}` }),
      fetch,
    });
    expect(await hook()).toEqual({ windowKey: "K", expires: 1900000000, url: "https://api.test/ws/floorchannels/" });
    token = "t2";
    await hook();
    expect(requests.map((r) => r.headers.get("authorization"))).toEqual(["Token t1", "Token t2"]);
    expect(requests[0].url).toBe("https://api.test/floorchannels/key/");
    expect(requests[0].init.method).toBe("POST");
    expect(requests[0].init.credentials).toBe("same-origin");
  });

  it("sends the CSRF cookie back as X-CSRFToken to its own origin only", async () => {
    document.cookie = "csrftoken=abc123";
    const { fetch, requests } = fakeFetch(() => jsonResponse({ window_key: "K" }));
    await keyFromUrl("/floorchannels/key/", { fetch })();
    await keyFromUrl("https://elsewhere.test/floorchannels/key/", { fetch })();
    await keyFromUrl("/floorchannels/key/", { fetch, csrfCookie: false })();
    expect(requests[0].url).toBe(`${location.origin}/floorchannels/key/`);
    expect(requests.map((r) => r.headers.get("x-csrftoken"))).toEqual(["abc123", null, null]);
  });

  it("prefers a CSRF token it was given (the config's csrf_token) to the cookie, on its own origin only", async () => {
    document.cookie = "csrftoken=from-cookie";
    const { fetch, requests } = fakeFetch(() => jsonResponse({ window_key: "K" }));
    await keyFromUrl("/floorchannels/key/", { fetch, csrfToken: "given" })();
    await keyFromUrl("https://elsewhere.test/floorchannels/key/", { fetch, csrfToken: "given" })();
    expect(requests.map((r) => r.headers.get("x-csrftoken"))).toEqual(["given", null]);
  });

  it("rejects with the status and the server's detail", async () => {
    const { fetch } = fakeFetch(() => jsonResponse({ detail: "Invalid token." }, 401));
    const error = await keyFromUrl("https://api.test/key/", { fetch })().catch((e) => e);
    expect(error).toBeInstanceOf(WindowKeyError);
    expect(error).toBeInstanceOf(FloorchannelsError);
    expect(error.code).toBe("key_unavailable");
    expect(error.status).toBe(401);
    expect(error.message).toBe("floorchannels: the key view answered 401: Invalid token.");
  });

  it("rejects when no answer comes, or the answer holds no key", async () => {
    const down = fakeFetch(() => Promise.reject(new TypeError("Failed to fetch")));
    const error = await keyFromUrl("https://api.test/key/", { fetch: down.fetch })().catch((e) => e);
    expect(error.status).toBeUndefined();
    expect(error.message).toMatch(/no answer from the key view https:\/\/api.test\/key\/: Failed to fetch/);
    const empty = fakeFetch(() => jsonResponse({}));
    await expect(keyFromUrl("https://api.test/key/", { fetch: empty.fetch })()).rejects.toThrow(/no window_key/);
  });
});

describe("connect() with a key URL", () => {
  function setConfig(config: object | null): void {
    document.getElementById("floorchannels-config")?.remove();
    if (config) {
      const el = document.createElement("script");
      el.id = "floorchannels-config";
      el.type = "application/json";
      el.textContent = JSON.stringify(config);
      document.head.appendChild(el);
    }
  }

  beforeEach(() => resetDefaultClient());
  afterEach(() => {
    setConfig(null);
    resetDefaultClient();
    vi.unstubAllGlobals();
  });

  it("a rendered page renews its expired key through the config's key_url", async () => {
    setConfig({ url: "/ws/floorchannels/", window_key: "page-key", key_url: "/floorchannels/key/" });
    const { fetch, requests } = fakeFetch((url) => jsonResponse({ window_key: "renewed", url: "/ws/floorchannels/" }, 200, url));
    vi.stubGlobal("fetch", fetch);
    const client = connect({ WebSocket: FakeSocket, random: () => 0 });
    clients.push(client);
    FakeSocket.last.open();
    expect(FakeSocket.last.sent[0].window_key).toBe("page-key");
    expect(requests).toHaveLength(0);
    FakeSocket.last.serverClose(4410, "window key expired");
    await vi.advanceTimersByTimeAsync(500);
    expect(requests.map((r) => [r.url, r.init.method])).toEqual([[`${location.origin}/floorchannels/key/`, "POST"]]);
    // The page's key goes along: the key view renews it only for the same user.
    expect(requests[0].init.body).toBe(JSON.stringify({ previous_key: "page-key" }));
    FakeSocket.last.open();
    expect(FakeSocket.last.sent[0].window_key).toBe("renewed");
    expect(FakeSocket.last.url).toBe(`ws://${location.host}/ws/floorchannels/`);
  });

  it("sends the config's csrf_token to key_url", async () => {
    setConfig({ url: "/ws/floorchannels/", window_key: "page-key", key_url: "/floorchannels/key/", csrf_token: "tok" });
    const { fetch, requests } = fakeFetch((url) => jsonResponse({ window_key: "renewed" }, 200, url));
    vi.stubGlobal("fetch", fetch);
    const client = connect({ WebSocket: FakeSocket, random: () => 0 });
    clients.push(client);
    FakeSocket.last.open();
    FakeSocket.last.serverClose(4410, "window key expired");
    await vi.advanceTimersByTimeAsync(500);
    expect(requests[0].headers.get("x-csrftoken")).toBe("tok");
  });

  it("a single-page app with no config gets its key and its websocket URL from keyUrl", async () => {
    setConfig(null);
    const { fetch, requests } = fakeFetch((url) =>
      jsonResponse({ window_key: "spa-key", url: "/ws/floorchannels/", expires: now() + 600 }, 200, url),
    );
    const client = connect({
      WebSocket: FakeSocket,
      keyUrl: "http://api.test:8001/floorchannels/key/",
      keyRequest: { headers: { Authorization: "Token abc" }, fetch },
    });
    clients.push(client);
    await vi.advanceTimersByTimeAsync(0);
    expect(requests[0].headers.get("authorization")).toBe("Token abc");
    expect(FakeSocket.last.url).toBe("ws://api.test:8001/ws/floorchannels/");
    FakeSocket.last.open();
    expect(FakeSocket.last.sent[0].window_key).toBe("spa-key");
  });

  it("a hook's bare key goes to the default path on the page", async () => {
    setConfig(null);
    const client = connect({ WebSocket: FakeSocket, getWindowKey: async () => "bare" });
    clients.push(client);
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.last.url).toBe(`ws://${location.host}/ws/floorchannels/`);
  });
});

describe("renewing a signed-in window's key", () => {
  it("keyFromUrl sends the key the client holds, so the key view can check it is the same user", async () => {
    const { fetch, requests } = fakeFetch(() => jsonResponse({ window_key: "K2" }));
    const hook = keyFromUrl("/floorchannels/key/", { fetch });
    await hook({ previousKey: "K1" });
    await hook();
    expect(requests[0].init.body).toBe(JSON.stringify({ previous_key: "K1" }));
    expect(requests[0].headers.get("content-type")).toBe("application/json");
    expect(requests[1].init.body).toBeUndefined();
  });

  it("the client passes its key to the hook when it renews", async () => {
    const keys = scriptedHook();
    makeClient({ windowKey: "old", getWindowKey: keys.hook, backoffMin: 500 });
    FakeSocket.last.open();
    FakeSocket.last.serverClose(4410, "window key expired");
    await vi.advanceTimersByTimeAsync(500);
    expect(keys.hook).toHaveBeenCalledWith({ previousKey: "old" });
  });

  it("stops for good when the key view says the session ended (no retry, a refused event)", async () => {
    const keys = scriptedHook();
    const client = makeClient({ windowKey: "old", getWindowKey: keys.hook, backoffMin: 500 });
    const refused = events(client, "refused");
    const keyerrors = events(client, "keyerror");
    FakeSocket.last.open();
    FakeSocket.last.serverClose(4410, "window key expired");
    await vi.advanceTimersByTimeAsync(500);
    const sockets = FakeSocket.instances.length;
    await keys.fail(new WindowKeyError("floorchannels: the key view answered 403", 403, "session_ended"));
    expect(client.state).toBe("closed");
    expect(refused).toEqual([{ code: 4403, reason: "the session this window was opened with has ended" }]);
    expect(keyerrors).toEqual([]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(keys.hook).toHaveBeenCalledTimes(1);
    expect(FakeSocket.instances).toHaveLength(sockets);
  });

  it("keyFromUrl carries the server's code on its error", async () => {
    const { fetch } = fakeFetch(() =>
      jsonResponse({ detail: "The session this window was opened with has ended.", code: "session_ended" }, 403),
    );
    const error = await keyFromUrl("/floorchannels/key/", { fetch })({ previousKey: "K" }).catch((e) => e);
    expect(error.serverCode).toBe("session_ended");
    expect(error.status).toBe(403);
  });
});
