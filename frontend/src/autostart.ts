/**
 * What the browser bundle does once loaded: when the page has the config
 * element, wire the declarative attributes and connect the default client.
 *
 * Both happen at DOMContentLoaded (or right away if the page has loaded), so a
 * page script that runs before it (inline at the end of <body>, `defer` or
 * `type="module"`) can call `floorchannels.connect({...})` with its own options
 * first. A config with `"auto_connect": false` leaves connecting to the first
 * declarative use or to the page's own `connect()`.
 */

import { readPageConfig } from "./config.js";
import { connect } from "./connect.js";
import { wire } from "./declarative.js";

export function autostart(doc: Document | undefined = globalThis.document): void {
  if (!doc) return;
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    const config = readPageConfig(doc);
    if (!config) return;
    wire(doc, () => connect({ document: doc }));
    if (config.auto_connect !== false) {
      try {
        connect({ document: doc });
      } catch (error) {
        console.error(error);
      }
    }
  };
  if (doc.readyState === "complete") {
    setTimeout(start, 0);
  } else {
    // Deferred scripts run before DOMContentLoaded; `load` covers a bundle added after it fired.
    doc.addEventListener("DOMContentLoaded", start, { once: true });
    doc.defaultView?.addEventListener("load", start, { once: true });
  }
}
