/**
 * Toasts for `fc.notify`: small, accessible, self-styled, no CSS framework.
 *
 * Toasts live in two persistent live regions inside one fixed container
 * (`#floorchannels-toasts`): a `role="status"` / `aria-live="polite"` region for
 * info, success and warning, and a `role="alert"` / `aria-live="assertive"`
 * region for errors. Live regions that exist before their content is added are
 * announced reliably by screen readers. Text is set as text, never as HTML.
 */

export type NotifyLevel = "info" | "success" | "warning" | "error";

export interface NotifyOptions {
  message: string;
  level?: NotifyLevel | string;
  /** Ms before the toast goes away by itself (default 5000; 0 or less keeps it until closed). */
  timeout?: number;
}

export const TOASTS_ID = "floorchannels-toasts";

const COLORS: Record<NotifyLevel, [string, string]> = {
  // [background, left border]
  info: ["#eef4fb", "#2f6fb3"],
  success: ["#edf7ee", "#2e7d32"],
  warning: ["#fff6e5", "#b26a00"],
  error: ["#fdecec", "#c62828"],
};

function style(el: HTMLElement, css: Partial<CSSStyleDeclaration>): void {
  Object.assign(el.style, css);
}

function region(doc: Document, container: HTMLElement, assertive: boolean): HTMLElement {
  const role = assertive ? "alert" : "status";
  let el = container.querySelector<HTMLElement>(`:scope > [role="${role}"]`);
  if (!el) {
    el = doc.createElement("div");
    el.setAttribute("role", role);
    el.setAttribute("aria-live", assertive ? "assertive" : "polite");
    el.setAttribute("aria-atomic", "false");
    style(el, { display: "flex", flexDirection: "column", gap: "8px" });
    container.appendChild(el);
  }
  return el;
}

function container(doc: Document): HTMLElement {
  let el = doc.getElementById(TOASTS_ID);
  if (!el) {
    el = doc.createElement("div");
    el.id = TOASTS_ID;
    style(el, {
      position: "fixed",
      right: "16px",
      bottom: "16px",
      zIndex: "2147483000",
      display: "flex",
      flexDirection: "column",
      gap: "8px",
      maxWidth: "min(360px, calc(100vw - 32px))",
      pointerEvents: "none",
    });
    (doc.body || doc.documentElement).appendChild(el);
  }
  return el;
}

/** Show a toast; returns its element (with a `dismiss()`-like close button inside). */
export function notify(doc: Document, options: NotifyOptions): HTMLElement {
  const level: NotifyLevel = options.level && options.level in COLORS ? (options.level as NotifyLevel) : "info";
  const [background, border] = COLORS[level];
  const box = container(doc);
  const live = region(doc, box, level === "error");

  const toast = doc.createElement("div");
  toast.className = `fc-toast fc-toast-${level}`;
  toast.setAttribute("data-fc-level", level);
  style(toast, {
    display: "flex",
    alignItems: "flex-start",
    gap: "12px",
    padding: "10px 12px",
    background,
    color: "#1b1b1b",
    borderLeft: `4px solid ${border}`,
    borderRadius: "6px",
    boxShadow: "0 2px 8px rgba(0,0,0,0.18)",
    font: "14px/1.4 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    pointerEvents: "auto",
    wordBreak: "break-word",
  });

  const text = doc.createElement("div");
  text.className = "fc-toast-message";
  text.textContent = options.message;
  style(text, { flex: "1 1 auto" });

  const close = doc.createElement("button");
  close.type = "button";
  close.className = "fc-toast-close";
  close.setAttribute("aria-label", "Dismiss notification");
  close.textContent = "\u00d7";
  style(close, {
    flex: "0 0 auto",
    border: "0",
    background: "transparent",
    color: "inherit",
    font: "inherit",
    fontSize: "18px",
    lineHeight: "1",
    cursor: "pointer",
    padding: "0 2px",
  });

  let timer: ReturnType<typeof setTimeout> | undefined;
  const dismiss = () => {
    clearTimeout(timer);
    toast.remove();
  };
  close.addEventListener("click", dismiss);

  toast.append(text, close);
  live.appendChild(toast);

  const timeout = typeof options.timeout === "number" ? options.timeout : 5000;
  if (timeout > 0) timer = setTimeout(dismiss, timeout);
  return toast;
}
