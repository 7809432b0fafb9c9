import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Client } from "../src/client";
import { installDomSignals } from "../src/dom";
import { FakeSocket } from "./fake-socket";

let client: Client;
let ws: FakeSocket;

function send(signal: string, kwargs: object): void {
  ws.receive({ type: "signal", signal, kwargs, id: Math.random().toString(36) });
}

beforeEach(() => {
  FakeSocket.reset();
  document.body.innerHTML = "";
  client = new Client({ url: "ws://x.test/ws/", windowKey: "k", WebSocket: FakeSocket });
  installDomSignals(client, document);
  ws = FakeSocket.last;
  ws.accept();
});
afterEach(() => {
  client.close();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe("fc.dom.html", () => {
  beforeEach(() => {
    document.body.innerHTML = `<ul id="list"><li id="a">a</li></ul>`;
  });

  it("replaces the contents by default (inner)", () => {
    send("fc.dom.html", { selector: "#list", html: "<li>x</li><li>y</li>" });
    expect(document.querySelector("#list")!.innerHTML).toBe("<li>x</li><li>y</li>");
  });

  it.each([
    ["inner", `<ul id="list"><li>n</li></ul>`],
    ["append", `<ul id="list"><li id="a">a</li><li>n</li></ul>`],
    ["prepend", `<ul id="list"><li>n</li><li id="a">a</li></ul>`],
  ])("position %s", (position, expected) => {
    send("fc.dom.html", { selector: "#list", html: "<li>n</li>", position });
    expect(document.body.innerHTML).toBe(expected);
  });

  it.each([
    ["outer", `<ul id="list"><li>n</li></ul>`],
    ["before", `<ul id="list"><li>n</li><li id="a">a</li></ul>`],
    ["after", `<ul id="list"><li id="a">a</li><li>n</li></ul>`],
  ])("position %s (relative to the element itself)", (position, expected) => {
    send("fc.dom.html", { selector: "#a", html: "<li>n</li>", position });
    expect(document.body.innerHTML).toBe(expected);
  });

  it("acts on every match", () => {
    document.body.innerHTML = `<p class="c">1</p><p class="c">2</p>`;
    send("fc.dom.html", { selector: ".c", html: "<b>x</b>" });
    expect(document.body.innerHTML).toBe(`<p class="c"><b>x</b></p><p class="c"><b>x</b></p>`);
  });

  it("fires floorchannels:inserted, bubbling, on the receiving element", () => {
    const seen: any[] = [];
    document.addEventListener("floorchannels:inserted", (e) => seen.push([(e.target as Element).id, (e as CustomEvent).detail]));
    send("fc.dom.html", { selector: "#list", html: "<li>n</li>", position: "append" });
    send("fc.dom.html", { selector: "#a", html: "<li>m</li>", position: "outer" });
    expect(seen).toHaveLength(2);
    expect(seen[0][0]).toBe("list");
    expect(seen[0][1].position).toBe("append");
    expect(seen[0][1].selector).toBe("#list");
    expect(seen[0][1].nodes.map((n: Element) => n.textContent)).toEqual(["n"]);
    expect(seen[1][0]).toBe("list"); // the parent, since #a is gone
  });

  it("does not run inserted scripts", () => {
    (window as any).ran = false;
    send("fc.dom.html", { selector: "#list", html: "<script>window.ran = true</script>" });
    expect((window as any).ran).toBe(false);
  });

  it("refuses an unknown position and ignores a bad selector", () => {
    const err = vi.spyOn(console, "error").mockImplementation(() => {});
    send("fc.dom.html", { selector: "#list", html: "<li>n</li>", position: "sideways" });
    send("fc.dom.html", { selector: "##", html: "<li>n</li>" });
    expect(document.querySelector("#list")!.innerHTML).toBe(`<li id="a">a</li>`);
    expect(err).toHaveBeenCalledTimes(2);
  });

  it("inserts table rows in context", () => {
    document.body.innerHTML = `<table><tbody id="rows"></tbody></table>`;
    send("fc.dom.html", { selector: "#rows", html: "<tr><td>1</td></tr>", position: "append" });
    expect(document.querySelector("#rows tr td")!.textContent).toBe("1");
  });
});

describe("other fc.dom signals", () => {
  it("fc.dom.remove removes every match", () => {
    document.body.innerHTML = `<p class="x">1</p><div><p class="x">2</p></div><p>3</p>`;
    send("fc.dom.remove", { selector: ".x" });
    expect(document.body.innerHTML).toBe(`<div></div><p>3</p>`);
  });

  it("fc.dom.empty empties", () => {
    document.body.innerHTML = `<div id="d"><p>1</p>text</div>`;
    send("fc.dom.empty", { selector: "#d" });
    expect(document.body.innerHTML).toBe(`<div id="d"></div>`);
  });

  it("fc.dom.text sets text, never HTML", () => {
    document.body.innerHTML = `<div id="d"><p>1</p></div>`;
    send("fc.dom.text", { selector: "#d", text: "<b>bold</b>" });
    const d = document.querySelector("#d")!;
    expect(d.textContent).toBe("<b>bold</b>");
    expect(d.children).toHaveLength(0);
  });

  it("fc.dom.class adds and removes strings or lists", () => {
    document.body.innerHTML = `<div id="d" class="a b"></div>`;
    send("fc.dom.class", { selector: "#d", add: "c", remove: ["a", "b"] });
    expect(document.querySelector("#d")!.className).toBe("c");
    send("fc.dom.class", { selector: "#d", add: ["x", "y"] });
    send("fc.dom.class", { selector: "#d", remove: "c" });
    expect(document.querySelector("#d")!.className).toBe("x y");
  });

  it("fc.dom.attr sets, and removes on null", () => {
    document.body.innerHTML = `<button id="b">x</button>`;
    send("fc.dom.attr", { selector: "#b", name: "disabled", value: "" });
    expect(document.querySelector("#b")!.hasAttribute("disabled")).toBe(true);
    send("fc.dom.attr", { selector: "#b", name: "data-n", value: 3 });
    expect(document.querySelector("#b")!.getAttribute("data-n")).toBe("3");
    send("fc.dom.attr", { selector: "#b", name: "disabled", value: null });
    expect(document.querySelector("#b")!.hasAttribute("disabled")).toBe(false);
  });

  it("fc.dom.focus focuses the first match", () => {
    document.body.innerHTML = `<input id="i1" class="f"><input id="i2" class="f">`;
    send("fc.dom.focus", { selector: ".f" });
    expect(document.activeElement!.id).toBe("i1");
  });

  it("a selector matching nothing is not an error", () => {
    const err = vi.spyOn(console, "error");
    send("fc.dom.text", { selector: "#nothing", text: "x" });
    expect(err).not.toHaveBeenCalled();
  });
});

describe("fc.page", () => {
  it("fc.page.reload reloads and fc.page.redirect assigns http(s) URLs only", () => {
    const reload = vi.fn();
    const assign = vi.fn();
    const fakeWindow = { location: { href: "https://site.test/a/b", reload, assign } };
    const fakeDoc = { defaultView: fakeWindow } as unknown as Document;
    const c = new Client({ url: "ws://x.test/ws/", windowKey: "k", WebSocket: FakeSocket });
    installDomSignals(c, fakeDoc);
    const s = FakeSocket.last;
    s.accept();
    vi.spyOn(console, "error").mockImplementation(() => {});
    s.receive({ type: "signal", signal: "fc.page.reload", kwargs: {} });
    expect(reload).toHaveBeenCalledTimes(1);
    s.receive({ type: "signal", signal: "fc.page.redirect", kwargs: { url: "../next/?q=1" } });
    expect(assign).toHaveBeenCalledWith("https://site.test/next/?q=1");
    s.receive({ type: "signal", signal: "fc.page.redirect", kwargs: { url: "javascript:alert(1)" } });
    expect(assign).toHaveBeenCalledTimes(1);
    c.close();
  });
});

describe("fc.notify", () => {
  it("shows an accessible toast with text, a close button, and auto-dismisses", () => {
    vi.useFakeTimers();
    send("fc.notify", { message: "<i>Saved</i>", level: "success", timeout: 1000 });
    const toast = document.querySelector(".fc-toast")!;
    expect(toast.querySelector(".fc-toast-message")!.textContent).toBe("<i>Saved</i>");
    expect(toast.querySelector("i")).toBeNull();
    const live = toast.parentElement!;
    expect(live.getAttribute("role")).toBe("status");
    expect(live.getAttribute("aria-live")).toBe("polite");
    expect(toast.getAttribute("data-fc-level")).toBe("success");
    vi.advanceTimersByTime(1000);
    expect(document.querySelector(".fc-toast")).toBeNull();
  });

  it("puts errors in an alert region and closes on the button", () => {
    send("fc.notify", { message: "Failed", level: "error", timeout: 0 });
    const toast = document.querySelector(".fc-toast")!;
    expect(toast.parentElement!.getAttribute("role")).toBe("alert");
    const button = toast.querySelector("button")!;
    expect(button.getAttribute("aria-label")).toBeTruthy();
    button.click();
    expect(document.querySelector(".fc-toast")).toBeNull();
  });

  it("defaults to info and 5 s, and stacks in one container", () => {
    vi.useFakeTimers();
    send("fc.notify", { message: "one" });
    send("fc.notify", { message: "two", level: "bogus" });
    expect(document.querySelectorAll("#floorchannels-toasts")).toHaveLength(1);
    expect(Array.from(document.querySelectorAll(".fc-toast"), (t) => t.getAttribute("data-fc-level"))).toEqual(["info", "info"]);
    vi.advanceTimersByTime(4999);
    expect(document.querySelectorAll(".fc-toast")).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(document.querySelectorAll(".fc-toast")).toHaveLength(0);
  });
});
