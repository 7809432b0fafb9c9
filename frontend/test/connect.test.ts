import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { websocketUrl, readPageConfig } from "../src/config";
import { connect, resetDefaultClient } from "../src/connect";
import { FakeSocket } from "./fake-socket";

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

beforeEach(() => {
  FakeSocket.reset();
  resetDefaultClient();
  setConfig({ url: "/ws/floorchannels/", window_key: "page-key" });
});
afterEach(() => {
  setConfig(null);
  vi.restoreAllMocks();
});

describe("websocketUrl", () => {
  it("builds ws:// or wss:// from a path and the page location", () => {
    expect(websocketUrl("/ws/floorchannels/", "http://example.test:8000/a/b")).toBe("ws://example.test:8000/ws/floorchannels/");
    expect(websocketUrl("/ws/floorchannels/", "https://example.test/a")).toBe("wss://example.test/ws/floorchannels/");
  });
  it("accepts absolute ws(s) URLs as they are, and maps http(s)", () => {
    expect(websocketUrl("wss://other.test/ws/", "http://example.test/")).toBe("wss://other.test/ws/");
    expect(websocketUrl("ws://other.test:9/x", "https://example.test/")).toBe("ws://other.test:9/x");
    expect(websocketUrl("https://other.test/ws/", "http://example.test/")).toBe("wss://other.test/ws/");
  });
  it("refuses other schemes", () => {
    expect(() => websocketUrl("ftp://x.test/", "http://example.test/")).toThrow(TypeError);
  });
});

describe("readPageConfig", () => {
  it("reads the JSON config element", () => {
    expect(readPageConfig(document)).toEqual({ url: "/ws/floorchannels/", window_key: "page-key" });
  });
  it("returns null without one, or with broken JSON", () => {
    setConfig(null);
    expect(readPageConfig(document)).toBeNull();
    const el = document.createElement("script");
    el.id = "floorchannels-config";
    el.type = "application/json";
    el.textContent = "{oops";
    document.head.appendChild(el);
    vi.spyOn(console, "error").mockImplementation(() => {});
    expect(readPageConfig(document)).toBeNull();
  });
});

describe("connect()", () => {
  it("uses the page config and the page location", () => {
    const client = connect({ WebSocket: FakeSocket });
    const ws = FakeSocket.last;
    expect(ws.url).toBe(`ws://${location.host}/ws/floorchannels/`);
    ws.open();
    expect(ws.sent[0]).toEqual({ type: "hello", window_key: "page-key", protocol: 2 });
    client.close();
  });

  it("lets options override the config", () => {
    const client = connect({ WebSocket: FakeSocket, url: "wss://elsewhere.test/socket/", windowKey: "mine", shared: false });
    const ws = FakeSocket.last;
    expect(ws.url).toBe("wss://elsewhere.test/socket/");
    ws.open();
    expect(ws.sent[0].window_key).toBe("mine");
    client.close();
  });

  it("returns the same default client when called twice (one socket)", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const a = connect({ WebSocket: FakeSocket });
    const b = connect();
    expect(b).toBe(a);
    expect(FakeSocket.instances).toHaveLength(1);
    connect({ heartbeat: 5 });
    expect(warn).toHaveBeenCalledTimes(1); // options cannot apply to an existing client
    a.close();
  });

  it("shared: false makes a separate client; close() frees the default slot", () => {
    const a = connect({ WebSocket: FakeSocket });
    const b = connect({ WebSocket: FakeSocket, shared: false });
    expect(b).not.toBe(a);
    expect(connect()).toBe(a);
    a.close();
    const c = connect({ WebSocket: FakeSocket });
    expect(c).not.toBe(a);
    b.close();
    c.close();
  });

  it("keeps a refused default client (reload the page to recover)", () => {
    const a = connect({ WebSocket: FakeSocket });
    FakeSocket.last.serverClose(4401);
    expect(a.state).toBe("closed");
    expect(connect()).toBe(a);
  });

  it("registers the built-in signals unless builtins: false", () => {
    document.body.innerHTML = `<p id="t">old</p>`;
    const a = connect({ WebSocket: FakeSocket });
    FakeSocket.last.accept();
    FakeSocket.last.receive({ type: "signal", signal: "fc.dom.text", kwargs: { selector: "#t", text: "new" } });
    expect(document.getElementById("t")!.textContent).toBe("new");
    const b = connect({ WebSocket: FakeSocket, shared: false, builtins: false });
    FakeSocket.last.accept();
    FakeSocket.last.receive({ type: "signal", signal: "fc.dom.text", kwargs: { selector: "#t", text: "newer" } });
    expect(document.getElementById("t")!.textContent).toBe("new");
    a.close();
    b.close();
  });

  it("throws a clear error without a window key", () => {
    setConfig(null);
    expect(() => connect({ WebSocket: FakeSocket })).toThrow(/window key/);
  });
});
