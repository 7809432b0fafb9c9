/**
 * Protocol version 2's server messages (see "Protocol version 2" in docs/protocol.md),
 * turned into the frames the rest of the client already knows, so that recovery,
 * handlers and `topicOf()` see one shape whatever the server speaks:
 *
 * - a JSON object is a frame as in version 1;
 * - an array whose head is a string is one compact signal, `[signal, kwargs, g?, seq?,
 *   e?, o?]`, decoded here into the `SignalFrame` a version 1 server would have sent
 *   (without `id`: version 2 recognises a message by its position);
 * - any other array is a batch of those, handled one by one in order.
 *
 * A malformed array is ignored rather than thrown on, so one bad frame cannot stop the
 * ones after it, and warned about once per kind of fault (a server sending them sends
 * many; one line says what is wrong).
 */

/** A `signal` frame as the handlers see it (a compact one is decoded into this). */
export interface SignalFrame {
  type: "signal";
  signal: string;
  kwargs: Record<string, any>;
  /** The message id (protocol 1 only: absent under protocol 2, which sends positions instead). */
  id?: string | number;
  /** The group alias, when the group keeps history (`client.topicOf(frame)` names a topic's). */
  g?: string;
  /** The message's position in that group's history (`"1732200000000-3"`; `"42-0"` under protocol 2). */
  seq?: string;
  /** The history epoch. */
  e?: string | number;
  /** For a message sent to several of the window's groups: its positions in the others (`{alias: seq}`). */
  o?: Record<string, string>;
}

/** The most elements a compact signal has: `[signal, kwargs, g, seq, e, o]`. */
const MAX_COMPACT = 6;

/** Splits messages into frames and decodes compact signals; remembers which faults it warned about. */
export class Frames {
  private readonly warned = new Set<string>();

  /**
   * The frames of one parsed websocket message, in order: the message itself (an object,
   * or a compact signal), or a batch's elements. A batch element that is itself a batch,
   * or neither an object nor a compact signal, is left out (warned once).
   */
  split(message: unknown): unknown[] {
    if (!Array.isArray(message) || typeof message[0] === "string") return [message];
    const frames: unknown[] = [];
    for (const frame of message) {
      if (Array.isArray(frame) ? typeof frame[0] === "string" : isObject(frame)) frames.push(frame);
      else this.warn("batch", "ignoring batch elements that are neither an object nor a compact signal");
    }
    return frames;
  }

  /**
   * The `SignalFrame` of compact signal `a`; `epoch` (the client's current history epoch)
   * is its `e` when it names none. `undefined` (warned once per kind) when malformed.
   */
  signal(a: readonly unknown[], epoch: string | number | undefined): SignalFrame | undefined {
    const [signal, kwargs, g, seq, e, o] = a;
    if (a.length !== 2 && (a.length < 4 || a.length > MAX_COMPACT)) {
      return this.warn("length", "ignoring compact signals of other than 2, 4, 5 or 6 elements");
    }
    if (!isObject(kwargs)) return this.warn("kwargs", "ignoring compact signals whose kwargs are not an object");
    const frame: SignalFrame = { type: "signal", signal: signal as string, kwargs };
    if (a.length === 2) return frame;
    if (typeof g !== "string" || !g) return this.warn("g", "ignoring compact signals whose group alias is not a string");
    if (!isSeq(seq)) return this.warn("seq", "ignoring compact signals whose seq is not a non-negative integer");
    if (e !== undefined && e !== null && typeof e !== "string" && typeof e !== "number") {
      return this.warn("e", "ignoring compact signals whose epoch is not a string");
    }
    frame.g = g;
    frame.seq = `${seq}-0`;
    const epochOf = e ?? epoch;
    if (epochOf !== undefined) frame.e = epochOf;
    if (a.length === MAX_COMPACT) {
      if (!isObject(o) || !Object.values(o).every(isSeq)) {
        return this.warn("o", "ignoring compact signals whose other positions are not {alias: integer}");
      }
      frame.o = Object.fromEntries(Object.entries(o).map(([alias, n]) => [alias, `${n}-0`]));
    }
    return frame;
  }

  /** Say what is wrong the first time a kind of fault is seen (a server sending one sends many). */
  private warn(kind: string, message: string): undefined {
    if (this.warned.has(kind)) return undefined;
    this.warned.add(kind);
    console.warn(`floorchannels: ${message} (said once)`);
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, any> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isSeq(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
