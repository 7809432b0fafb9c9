import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Client } from "../src/client";
import { formKwargs, wire } from "../src/declarative";
import { installDomSignals } from "../src/dom";
import { FakeSocket } from "./fake-socket";

let client: Client;
let ws: FakeSocket;
let unwire: () => void;
let getClient: ReturnType<typeof vi.fn>;

function lastCall(): any {
  return ws.sentOfType("call").at(-1);
}
function reply(frame: object): Promise<void> {
  ws.receive({ type: "reply", id: lastCall().id, ...frame });
  return new Promise((r) => setTimeout(r, 0));
}
const html = (markup: string) => (document.body.innerHTML = markup);
const $ = (sel: string) => document.querySelector(sel) as HTMLElement;

beforeEach(() => {
  FakeSocket.reset();
  document.body.innerHTML = "";
  client = new Client({ url: "ws://x.test/ws/", windowKey: "k", WebSocket: FakeSocket });
  installDomSignals(client, document);
  ws = FakeSocket.last;
  ws.accept();
  getClient = vi.fn(() => client);
  unwire = wire(document, getClient as () => Client);
});
afterEach(() => {
  unwire();
  client.close();
  vi.restoreAllMocks();
});

describe("click", () => {
  it("calls the signal with static kwargs and shows the result as text", async () => {
    html(`<button id="b" data-fc-call="demo.add" data-fc-kwargs='{"a": 1, "b": 2}' data-fc-result="#out">+</button><span id="out"></span>`);
    $("#b").click();
    expect(lastCall()).toMatchObject({ signal: "demo.add", kwargs: { a: 1, b: 2 } });
    expect($("#b").hasAttribute("data-fc-busy")).toBe(true);
    await reply({ ok: true, result: "<b>3</b>" });
    expect($("#out").textContent).toBe("<b>3</b>");
    expect($("#out").children).toHaveLength(0);
    expect($("#b").hasAttribute("data-fc-busy")).toBe(false);
  });

  it("works from a child of the element, and on links (no navigation)", async () => {
    html(`<a id="l" href="/elsewhere" data-fc-call="x.go"><span id="inner">go</span></a>`);
    const click = new MouseEvent("click", { bubbles: true, cancelable: true });
    $("#inner").dispatchEvent(click);
    expect(click.defaultPrevented).toBe(true);
    expect(lastCall().signal).toBe("x.go");
  });

  it("renders object results as JSON and null as empty", async () => {
    html(`<button id="b" data-fc-call="x" data-fc-result="#out"></button><pre id="out">old</pre>`);
    $("#b").click();
    await reply({ ok: true, result: { n: [1, 2] } });
    expect($("#out").textContent).toBe('{"n":[1,2]}');
    $("#b").click();
    await reply({ ok: true, queued: true });
    expect($("#out").textContent).toBe("");
  });

  it("marks errors: data-fc-error, the code in the result target, and a floorchannels:error event", async () => {
    html(`<div id="wrap"><button id="b" data-fc-call="admin.only" data-fc-result="#out"></button></div><span id="out"></span>`);
    const seen: any[] = [];
    $("#wrap").addEventListener("floorchannels:error", (e) => seen.push((e as CustomEvent).detail));
    $("#b").click();
    await reply({ ok: false, error: { code: "forbidden", message: "no" } });
    expect($("#b").getAttribute("data-fc-error")).toBe("forbidden");
    expect($("#out").textContent).toBe("forbidden");
    expect(seen).toHaveLength(1);
    expect(seen[0].code).toBe("forbidden");
    expect(seen[0].signal).toBe("admin.only");
    expect(seen[0].error.message).toBe("no");
    // a later success clears the error mark and fires floorchannels:result
    const results: any[] = [];
    document.addEventListener("floorchannels:result", (e) => results.push((e as CustomEvent).detail));
    $("#b").click();
    await reply({ ok: true, result: 1 });
    expect($("#b").hasAttribute("data-fc-error")).toBe(false);
    expect(results[0]).toMatchObject({ signal: "admin.only", result: 1 });
  });

  it("reports invalid data-fc-kwargs without calling", () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    html(`<button id="b" data-fc-call="x" data-fc-kwargs="[1" data-fc-result="#out"></button><span id="out"></span>`);
    $("#b").click();
    expect(ws.sentOfType("call")).toHaveLength(0);
    expect($("#b").getAttribute("data-fc-error")).toBe("invalid_kwargs");
    expect($("#out").textContent).toBe("invalid_kwargs");
  });

  it("gets the client lazily, on first use", () => {
    expect(getClient).not.toHaveBeenCalled();
    html(`<button id="b" data-fc-call="x"></button>`);
    $("#b").click();
    expect(getClient).toHaveBeenCalledTimes(1);
  });

  it("ignores clicks another handler already prevented", () => {
    html(`<button id="b" data-fc-call="x"></button>`);
    $("#b").addEventListener("click", (e) => e.preventDefault());
    $("#b").click();
    expect(ws.sentOfType("call")).toHaveLength(0);
  });

  it("honours data-fc-timeout", async () => {
    vi.useFakeTimers();
    html(`<button id="b" data-fc-call="x" data-fc-timeout="100" data-fc-result="#out"></button><span id="out"></span>`);
    $("#b").click();
    vi.advanceTimersByTime(100);
    vi.useRealTimers();
    await new Promise((r) => setTimeout(r, 0));
    expect($("#b").getAttribute("data-fc-error")).toBe("timeout");
  });
});

describe("forms", () => {
  it("submits named fields as kwargs, numbers as numbers, and static kwargs", async () => {
    html(`
      <form id="f" data-fc-call="demo.add" data-fc-kwargs='{"op": "add", "a": 0}' data-fc-result="#out">
        <input type="number" name="a" value="4">
        <input type="number" name="b" value="2.5">
        <input type="number" name="empty" value="">
        <input type="text" name="label" value="hi">
        <input type="checkbox" name="flag" checked>
        <input type="checkbox" name="tags" value="x" checked><input type="checkbox" name="tags" value="y">
        <input type="radio" name="size" value="s"><input type="radio" name="size" value="m" checked>
        <select name="many" multiple><option value="1" selected>1</option><option value="2" selected>2</option><option value="3">3</option></select>
        <textarea name="body">text</textarea>
        <input type="text" name="off" value="x" disabled>
        <input type="text" value="nameless">
        <input type="file" name="upload">
        <button type="submit" name="go" value="1">Go</button>
      </form><span id="out"></span>`);
    const submit = new Event("submit", { bubbles: true, cancelable: true });
    $("#f").dispatchEvent(submit);
    expect(submit.defaultPrevented).toBe(true);
    expect(lastCall()).toMatchObject({
      signal: "demo.add",
      kwargs: {
        op: "add",
        a: 4,
        b: 2.5,
        empty: null,
        label: "hi",
        flag: true,
        tags: ["x"],
        size: "m",
        many: ["1", "2"],
        body: "text",
      },
    });
    expect(Object.keys(lastCall().kwargs).sort()).toEqual(
      ["a", "b", "body", "empty", "flag", "label", "many", "op", "size", "tags"].sort(),
    );
    await reply({ ok: true, result: 6.5 });
    expect($("#out").textContent).toBe("6.5");
  });

  it("a submit button inside the form does not trigger a click call", () => {
    html(`<form id="f" data-fc-call="x.save"><input name="n" value="v"><button id="go">Save</button></form>`);
    $("#go").click(); // jsdom submits the form on click of a submit button
    const calls = ws.sentOfType("call");
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ signal: "x.save", kwargs: { n: "v" } });
  });

  it("repeated names give arrays; an unchecked radio group gives null", () => {
    html(`<form id="f"><input name="q" value="1"><input name="q" value="2"><input type="radio" name="r" value="a"></form>`);
    expect(formKwargs($("#f") as HTMLFormElement)).toEqual({ q: ["1", "2"], r: null });
  });
});

describe("change", () => {
  it("sends {name: value} for selects, checkboxes and number inputs", () => {
    html(`
      <select id="s" name="room" data-fc-call="chat.join" data-fc-kwargs='{"x": 1}'><option value="a">a</option><option value="b">b</option></select>
      <input id="c" type="checkbox" name="on" data-fc-call="pref.set">
      <input id="n" type="number" name="qty" value="3" data-fc-call="cart.qty">`);
    const s = $("#s") as HTMLSelectElement;
    s.value = "b";
    s.dispatchEvent(new Event("change", { bubbles: true }));
    expect(lastCall()).toMatchObject({ signal: "chat.join", kwargs: { x: 1, room: "b" } });
    ($("#c") as HTMLInputElement).click(); // toggles and fires change
    expect(lastCall()).toMatchObject({ signal: "pref.set", kwargs: { on: true } });
    $("#n").dispatchEvent(new Event("change", { bubbles: true }));
    expect(lastCall()).toMatchObject({ signal: "cart.qty", kwargs: { qty: 3 } });
    // clicking a field does not call
    const before = ws.sentOfType("call").length;
    $("#n").click();
    expect(ws.sentOfType("call")).toHaveLength(before);
  });
});

describe("inserted HTML", () => {
  it("works on elements inserted by fc.dom.html (delegation)", () => {
    html(`<div id="slot"></div>`);
    ws.receive({
      type: "signal",
      signal: "fc.dom.html",
      kwargs: { selector: "#slot", html: `<button id="nb" data-fc-call="late.bound">x</button>` },
    });
    $("#nb").click();
    expect(lastCall().signal).toBe("late.bound");
  });
});

describe("wire()", () => {
  it("wiring twice does not double the calls; unwire stops them", () => {
    html(`<button id="b" data-fc-call="x"></button>`);
    wire(document, getClient as () => Client);
    $("#b").click();
    expect(ws.sentOfType("call")).toHaveLength(1);
    unwire();
    $("#b").click();
    expect(ws.sentOfType("call")).toHaveLength(1);
    unwire = wire(document, getClient as () => Client);
  });
});
