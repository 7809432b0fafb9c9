/** Entry of the IIFE bundle (`window.floorchannels`): the public API, plus autostart. */
import { autostart } from "./autostart";

export * from "./index";

autostart();
