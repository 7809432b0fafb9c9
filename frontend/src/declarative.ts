/**
 * Declarative calls: HTML attributes that call server signals without page
 * JavaScript.
 *
 *   <button data-fc-call="demo.add" data-fc-kwargs='{"a": 1, "b": 2}' data-fc-result="#sum">Add</button>
 *   <form data-fc-call="chat.send" data-fc-result="#status">…named fields…</form>
 *   <select name="room" data-fc-call="chat.join">…</select>
 *
 * The listeners are delegated on the document, so elements inserted later (by
 * `fc.dom.html` or anything else) work without re-binding.
 */

import type { Client } from "./client.js";
import { FloorchannelsError } from "./errors.js";

export const ERROR_EVENT = "floorchannels:error";
export const RESULT_EVENT = "floorchannels:result";

/** `detail` of `floorchannels:result`. */
export interface ResultDetail {
  signal: string;
  kwargs: Record<string, unknown>;
  result: unknown;
}

/** `detail` of `floorchannels:error`. */
export interface ErrorDetail {
  signal: string;
  kwargs: Record<string, unknown>;
  code: string;
  error: FloorchannelsError;
}

type Trigger = "click" | "submit" | "change";
type Field = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;

const CLICK_INPUT_TYPES = new Set(["button", "submit", "reset", "image"]);
const SKIPPED_INPUT_TYPES = new Set(["button", "submit", "reset", "image", "file"]);

/** Which event runs an element's call: forms on submit, fields on change, anything else on click. */
export function triggerOf(el: Element): Trigger {
  const tag = el.tagName;
  if (tag === "FORM") return "submit";
  if (tag === "SELECT" || tag === "TEXTAREA") return "change";
  if (tag === "INPUT") return CLICK_INPUT_TYPES.has((el as HTMLInputElement).type) ? "click" : "change";
  return "click";
}

/** The value one field contributes: numbers for number/range inputs, booleans for a checkbox, arrays for a multiple select. */
export function fieldValue(el: Field): unknown {
  if (el.tagName === "SELECT" && (el as HTMLSelectElement).multiple) {
    return Array.from((el as HTMLSelectElement).selectedOptions, (o) => o.value);
  }
  if (el.tagName === "INPUT") {
    const input = el as HTMLInputElement;
    if (input.type === "checkbox") return input.checked;
    if (input.type === "number" || input.type === "range") {
      if (input.value.trim() === "") return null;
      const n = Number(input.value);
      return Number.isNaN(n) ? null : n;
    }
  }
  return el.value;
}

/**
 * The kwargs of a form: one entry per named, enabled field. A lone checkbox gives
 * a boolean; several checkboxes sharing a name give the array of the checked
 * values; radios give the checked value (or null); a name used by several other
 * fields gives an array. File inputs and buttons are left out.
 */
export function formKwargs(form: HTMLFormElement): Record<string, unknown> {
  const fields = (Array.from(form.elements) as Element[]).filter((el): el is Field => {
    const f = el as Field;
    if (!f.name || (f as HTMLInputElement).disabled) return false;
    if (el.tagName === "INPUT") return !SKIPPED_INPUT_TYPES.has((el as HTMLInputElement).type);
    return el.tagName === "SELECT" || el.tagName === "TEXTAREA";
  });
  const checkboxCount = new Map<string, number>();
  for (const f of fields) {
    if ((f as HTMLInputElement).type === "checkbox") checkboxCount.set(f.name, (checkboxCount.get(f.name) ?? 0) + 1);
  }
  const out: Record<string, unknown> = {};
  const repeated = new Set<string>();
  for (const f of fields) {
    const { name } = f;
    const type = f.tagName === "INPUT" ? (f as HTMLInputElement).type : "";
    if (type === "radio") {
      if ((f as HTMLInputElement).checked) out[name] = f.value;
      else if (!(name in out)) out[name] = null;
    } else if (type === "checkbox" && (checkboxCount.get(name) ?? 0) > 1) {
      const list = (out[name] as unknown[] | undefined) ?? (out[name] = []);
      if ((f as HTMLInputElement).checked) (list as unknown[]).push(f.value);
    } else if (name in out) {
      if (!repeated.has(name)) {
        out[name] = [out[name]];
        repeated.add(name);
      }
      (out[name] as unknown[]).push(fieldValue(f));
    } else {
      out[name] = fieldValue(f);
    }
  }
  return out;
}

function staticKwargs(el: Element): Record<string, unknown> {
  const raw = el.getAttribute("data-fc-kwargs");
  if (raw == null || raw.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = undefined;
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw new FloorchannelsError("invalid_kwargs", `floorchannels: data-fc-kwargs is not a JSON object: ${raw}`);
  }
  return value as Record<string, unknown>;
}

function asText(result: unknown): string {
  if (result == null) return "";
  if (typeof result === "string") return result;
  if (typeof result === "object") return JSON.stringify(result);
  return String(result);
}

function resultTarget(el: Element): Element | null {
  const selector = el.getAttribute("data-fc-result");
  if (!selector) return null;
  try {
    return el.ownerDocument.querySelector(selector);
  } catch {
    console.error(`floorchannels: invalid data-fc-result selector ${JSON.stringify(selector)}`);
    return null;
  }
}

/** Run the call an element declares, with `fields` from the triggering event. */
export function runDeclared(el: Element, fields: Record<string, unknown>, getClient: () => Client): Promise<void> {
  const signal = el.getAttribute("data-fc-call") || "";
  const target = resultTarget(el);
  let kwargs: Record<string, unknown> = fields;

  const fail = (error: unknown) => {
    const err = error instanceof FloorchannelsError ? error : new FloorchannelsError("server_error", String(error), signal);
    el.setAttribute("data-fc-error", err.code);
    if (target) target.textContent = err.code;
    const detail: ErrorDetail = { signal, kwargs, code: err.code, error: err };
    el.dispatchEvent(new CustomEvent(ERROR_EVENT, { bubbles: true, detail }));
  };

  try {
    kwargs = { ...staticKwargs(el), ...fields };
  } catch (error) {
    console.error(error);
    fail(error);
    return Promise.resolve();
  }
  const timeoutAttr = el.getAttribute("data-fc-timeout");
  const timeout = timeoutAttr ? Number(timeoutAttr) : undefined;

  el.setAttribute("data-fc-busy", "");
  let call: Promise<unknown>;
  try {
    call = getClient().call(signal, kwargs, timeout === undefined || Number.isNaN(timeout) ? {} : { timeout });
  } catch (error) {
    call = Promise.reject(error);
  }
  return call.then(
    (result) => {
      el.removeAttribute("data-fc-busy");
      el.removeAttribute("data-fc-error");
      if (target) target.textContent = asText(result);
      const detail: ResultDetail = { signal, kwargs, result };
      el.dispatchEvent(new CustomEvent(RESULT_EVENT, { bubbles: true, detail }));
    },
    (error) => {
      el.removeAttribute("data-fc-busy");
      fail(error);
    },
  );
}

const wired = new WeakMap<Document, () => void>();

/**
 * Listen on `doc` for clicks, submits and changes on `[data-fc-call]` elements.
 * `getClient` is called on first use, so the connection can open lazily.
 * Wiring the same document twice is a no-op. Returns a function that unwires.
 */
export function wire(doc: Document, getClient: () => Client): () => void {
  const existing = wired.get(doc);
  if (existing) return existing;

  const declared = (target: EventTarget | null, trigger: Trigger): Element | null => {
    const node = target as Node | null;
    const start = node && node.nodeType === 1 ? (node as Element) : (node?.parentElement ?? null);
    const el = start?.closest("[data-fc-call]") ?? null;
    return el && triggerOf(el) === trigger ? el : null;
  };

  const onClick = (event: Event) => {
    if (event.defaultPrevented) return;
    const el = declared(event.target, "click");
    if (!el) return;
    event.preventDefault();
    void runDeclared(el, {}, getClient);
  };
  const onSubmit = (event: Event) => {
    if (event.defaultPrevented) return;
    const form = event.target as Element | null;
    if (!form || form.tagName !== "FORM" || !form.hasAttribute("data-fc-call")) return;
    event.preventDefault();
    void runDeclared(form, formKwargs(form as HTMLFormElement), getClient);
  };
  const onChange = (event: Event) => {
    const el = event.target as Element | null;
    if (!el || el.nodeType !== 1 || !el.hasAttribute("data-fc-call") || triggerOf(el) !== "change") return;
    const field = el as Field;
    void runDeclared(el, field.name ? { [field.name]: fieldValue(field) } : {}, getClient);
  };

  doc.addEventListener("click", onClick);
  doc.addEventListener("submit", onSubmit);
  doc.addEventListener("change", onChange);
  const unwire = () => {
    doc.removeEventListener("click", onClick);
    doc.removeEventListener("submit", onSubmit);
    doc.removeEventListener("change", onChange);
    wired.delete(doc);
  };
  wired.set(doc, unwire);
  return unwire;
}
