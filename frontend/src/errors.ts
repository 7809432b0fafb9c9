/**
 * Errors a `call()` or a `subscribe()` can reject with.
 *
 * Every rejection is a `FloorchannelsError` whose `code` is either one of the
 * protocol's error codes (sent by the server in `reply.error.code`) or one of the
 * codes the client produces itself (`CLIENT_CODES`). Code, not message, is the
 * stable part: messages are for people and may change.
 */

/** Codes the server sends (docs/protocol.md, "Error codes"). */
export type ServerErrorCode =
  | "invalid_frame"
  | "unknown_signal"
  | "forbidden"
  | "invalid_arguments"
  | "server_error"
  | "timeout"
  | "rate_limited"
  /** `subscribe` names no live resource. */
  | "unknown_resource"
  /** `subscribe` with a `pk` this window's user cannot see. */
  | "not_found"
  /** The window already holds the server's maximum number of subscriptions. */
  | "too_many_subscriptions"
  /** `join`: the window is already in `MAX_TOPICS` topics. */
  | "too_many_topics";

/** Codes the client produces without asking the server. */
export type ClientErrorCode =
  /** No reply within the call's timeout (waiting in the buffer counts). */
  | "timeout"
  /** The client was offline and its buffer of waiting calls was full. */
  | "buffer_full"
  /** The client is closed: `close()` was called or the server refused the window key. */
  | "closed"
  /** The call had been sent, then the socket dropped before its reply came: its outcome is unknown. */
  | "disconnected"
  /** A declarative element's `data-fc-kwargs` is not a JSON object. */
  | "invalid_kwargs"
  /** A subscription was cancelled (its `signal` aborted) before the server accepted it. */
  | "aborted"
  /** `keyFromUrl()`: the key view gave no key (`WindowKeyError`, in the `keyerror` event). */
  | "key_unavailable";

export type ErrorCode = ServerErrorCode | ClientErrorCode | (string & {});

export const CLIENT_CODES: readonly ClientErrorCode[] = [
  "timeout",
  "buffer_full",
  "closed",
  "disconnected",
  "invalid_kwargs",
  "aborted",
  "key_unavailable",
];

/** The error every rejected `call()` or `subscribe()` carries. */
export class FloorchannelsError extends Error {
  /** A protocol error code or a client-side code (see `ErrorCode`). */
  readonly code: ErrorCode;
  /** The signal whose call failed, when there was one. */
  readonly signal: string | undefined;

  constructor(code: ErrorCode, message?: string, signal?: string) {
    super(message || code);
    this.name = "FloorchannelsError";
    this.code = code;
    this.signal = signal;
    // Keep `instanceof` working when compiled down to ES5-style classes.
    Object.setPrototypeOf(this, new.target.prototype);
  }
}
