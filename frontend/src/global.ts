/**
 * Types for pages that load the browser bundle with a script tag instead of
 * importing the module: the bundle defines `window.floorchannels`, and this
 * file tells TypeScript so. Opt in with
 * `/// <reference types="floorchannels/global" />` (or
 * `import type {} from "floorchannels/global"`).
 *
 * It declares only; nothing imports it, so no bundle contains it.
 */

import type * as api from "./index.js";

declare global {
  // `var`, not `let`: the bundle's top-level `var floorchannels` is a property of `window`.
  var floorchannels: typeof api;
}

export {};
