// @vitest-environment node
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";
import { describe, expect, it } from "vitest";
import { BUNDLE_PATH, buildBundle, bundleIsFresh } from "../scripts/build.mjs";

describe("the committed browser bundle", () => {
  it("is up to date with src/ (run `npm run build` and commit if this fails)", async () => {
    expect(await bundleIsFresh(), `${BUNDLE_PATH} is stale`).toBe(true);
  });

  it("builds deterministically", async () => {
    const [a, b] = await Promise.all([buildBundle(), buildBundle()]);
    expect(Buffer.compare(Buffer.from(a), Buffer.from(b))).toBe(0);
  });

  it("works from a plain script tag: window.floorchannels, autostart, declarative wiring", async () => {
    const dom = new JSDOM(
      `<!doctype html><html><head>
        <script id="floorchannels-config" type="application/json">{"url": "/ws/floorchannels/", "window_key": "k1"}</script>
      </head><body><button id="b" data-fc-call="demo.add" data-fc-kwargs='{"a": 1, "b": 2}' data-fc-result="#out">+</button><span id="out"></span></body></html>`,
      { url: "https://site.test/page/", runScripts: "dangerously" },
    );
    const win = dom.window as any;
    win.eval(`
      window.sockets = [];
      window.WebSocket = class {
        constructor(url) { this.url = url; this.readyState = 0; this.sent = []; window.sockets.push(this); }
        send(data) { this.sent.push(JSON.parse(data)); }
        close() { this.readyState = 3; }
      };
    `);
    // Loaded the way a page loads it: a classic <script> element.
    const script = win.document.createElement("script");
    script.textContent = readFileSync(BUNDLE_PATH, "utf8");
    win.document.body.appendChild(script);
    expect(typeof win.floorchannels.connect).toBe("function");
    expect(typeof win.floorchannels.FloorchannelsError).toBe("function");
    expect(typeof win.floorchannels.liveList).toBe("function");
    await new Promise((r) => setTimeout(r, 20)); // autostart runs after load
    expect(win.sockets).toHaveLength(1);
    const ws = win.sockets[0];
    expect(ws.url).toBe("wss://site.test/ws/floorchannels/");
    ws.readyState = 1;
    ws.onopen({});
    ws.onmessage({ data: JSON.stringify({ type: "welcome", window_id: "w", protocol: 1, heartbeat: 25 }) });
    const client = win.floorchannels.connect();
    expect(client.state).toBe("open");
    expect(win.sockets).toHaveLength(1);

    win.document.getElementById("b").click();
    const call = ws.sent.find((f: any) => f.type === "call");
    expect(call).toMatchObject({ signal: "demo.add", kwargs: { a: 1, b: 2 } });
    ws.onmessage({ data: JSON.stringify({ type: "reply", id: call.id, ok: true, result: 3 }) });
    await new Promise((r) => setTimeout(r, 0));
    expect(win.document.getElementById("out").textContent).toBe("3");
    client.close();
    dom.window.close();
  });
});
