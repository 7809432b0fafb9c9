/**
 * Built-in browser signals: the server changes the page by sending `signal`
 * frames named `fc.dom.*`, `fc.page.*` and `fc.notify`. Their names and kwargs are
 * part of the contract with the Python shortcuts; keep them exact.
 *
 * Every `fc.dom.*` signal acts on every element matching `selector`
 * (except `fc.dom.focus`, which focuses the first one). A selector that matches
 * nothing is not an error: the page may simply not show that part.
 */

import type { Client, SignalHandler } from "./client.js";
import { notify } from "./notify.js";

export type InsertPosition = "inner" | "outer" | "append" | "prepend" | "before" | "after";

/** `detail` of the `floorchannels:inserted` event. */
export interface InsertedDetail {
  selector: string;
  position: InsertPosition;
  /** The top-level nodes that were inserted. */
  nodes: Node[];
}

export const INSERTED_EVENT = "floorchannels:inserted";

const POSITIONS: readonly InsertPosition[] = ["inner", "outer", "append", "prepend", "before", "after"];

function all(selector: unknown, doc: Document): Element[] {
  if (typeof selector !== "string" || !selector) {
    console.warn("floorchannels: a DOM signal came without a selector");
    return [];
  }
  try {
    return Array.from(doc.querySelectorAll(selector));
  } catch (error) {
    console.error(`floorchannels: invalid selector ${JSON.stringify(selector)}`, error);
    return [];
  }
}

function names(value: unknown): string[] {
  const list = Array.isArray(value) ? value : typeof value === "string" ? value.split(/\s+/) : [];
  return list.filter((n): n is string => typeof n === "string" && n.length > 0);
}

/**
 * Insert `html` relative to `el` and fire `floorchannels:inserted` (bubbling) on
 * the element that received the new nodes: `el` itself for `inner`, `append` and
 * `prepend`; its parent for `outer`, `before` and `after`.
 */
export function insertHtml(el: Element, html: string, position: InsertPosition = "inner", selector = ""): Node[] {
  const doc = el.ownerDocument;
  const template = doc.createElement("template");
  template.innerHTML = html;
  const nodes = Array.from(template.content.childNodes);
  const parent = el.parentElement;
  let target: Element | null = el;
  switch (position) {
    case "inner":
      el.replaceChildren(template.content);
      break;
    case "append":
      el.append(template.content);
      break;
    case "prepend":
      el.prepend(template.content);
      break;
    case "outer":
      target = parent;
      el.replaceWith(template.content);
      break;
    case "before":
      target = parent;
      el.before(template.content);
      break;
    case "after":
      target = parent;
      el.after(template.content);
      break;
  }
  const detail: InsertedDetail = { selector, position, nodes };
  target?.dispatchEvent(new CustomEvent(INSERTED_EVENT, { bubbles: true, detail }));
  return nodes;
}

/** The handlers of the built-in signals, by name, acting on `doc`. */
export function domSignals(doc: Document = document): Record<string, SignalHandler> {
  return {
    "fc.dom.html": ({ selector, html, position }) => {
      const pos: InsertPosition = position == null ? "inner" : position;
      if (!POSITIONS.includes(pos)) {
        console.error(`floorchannels: fc.dom.html: unknown position ${JSON.stringify(position)}`);
        return;
      }
      const markup = html == null ? "" : String(html);
      for (const el of all(selector, doc)) insertHtml(el, markup, pos, selector);
    },
    "fc.dom.remove": ({ selector }) => {
      for (const el of all(selector, doc)) el.remove();
    },
    "fc.dom.empty": ({ selector }) => {
      for (const el of all(selector, doc)) el.replaceChildren();
    },
    "fc.dom.text": ({ selector, text }) => {
      for (const el of all(selector, doc)) el.textContent = text == null ? "" : String(text);
    },
    "fc.dom.class": ({ selector, add, remove }) => {
      const added = names(add);
      const removed = names(remove);
      for (const el of all(selector, doc)) {
        if (removed.length) el.classList.remove(...removed);
        if (added.length) el.classList.add(...added);
      }
    },
    "fc.dom.attr": ({ selector, name, value }) => {
      if (typeof name !== "string" || !name) {
        console.error("floorchannels: fc.dom.attr needs a name");
        return;
      }
      for (const el of all(selector, doc)) {
        if (value == null) el.removeAttribute(name);
        else el.setAttribute(name, String(value));
      }
    },
    "fc.dom.focus": ({ selector }) => {
      const el = all(selector, doc)[0];
      if (el && typeof (el as HTMLElement).focus === "function") (el as HTMLElement).focus();
    },
    "fc.page.reload": () => {
      doc.defaultView?.location.reload();
    },
    "fc.page.redirect": ({ url }) => {
      const win = doc.defaultView;
      if (!win || typeof url !== "string") return;
      let target: URL;
      try {
        target = new URL(url, win.location.href);
      } catch {
        console.error(`floorchannels: fc.page.redirect: invalid url ${JSON.stringify(url)}`);
        return;
      }
      // Only web pages: never run a `javascript:` or `data:` URL sent over the socket.
      if (target.protocol !== "http:" && target.protocol !== "https:") {
        console.error(`floorchannels: fc.page.redirect: refusing ${target.protocol} url`);
        return;
      }
      win.location.assign(target.href);
    },
    "fc.notify": ({ message, level, timeout }) => {
      notify(doc, { message: message == null ? "" : String(message), level, timeout });
    },
  };
}

/** Register the built-in signals on a client. Returns a function that removes them. */
export function installDomSignals(client: Client, doc: Document = document): () => void {
  const offs = Object.entries(domSignals(doc)).map(([name, handler]) => client.on(name, handler));
  return () => offs.forEach((off) => off());
}
