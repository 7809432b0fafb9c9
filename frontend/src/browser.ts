/** Entry of the IIFE bundle (`window.floorchannels`): the public API, plus autostart. */
import { autostart } from "./autostart.js";

export * from "./index.js";

autostart();
