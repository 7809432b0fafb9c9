/**
 * Reconnect delays: exponential growth with full jitter, bounded.
 *
 * Attempt `n` (0-based) waits a uniformly random time between `min` and
 * `ceiling(n) = min(max, min * 2 ** (n + 1))`. Jitter over the whole window
 * spreads out the reconnects of many pages after a server restart, and the
 * lower bound keeps a page from hammering a server that refuses at once.
 */

export interface BackoffOptions {
  /** Smallest delay in milliseconds (default 500). */
  min?: number;
  /** Largest delay in milliseconds (default 20000). */
  max?: number;
  /** A source of numbers in [0, 1); injectable for tests (default Math.random). */
  random?: () => number;
}

export class Backoff {
  readonly min: number;
  readonly max: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(options: BackoffOptions = {}) {
    const min = options.min ?? 500;
    const max = options.max ?? 20000;
    if (!(min >= 0) || !(max >= min)) {
      throw new RangeError(`backoff bounds must satisfy 0 <= min <= max (got ${min}, ${max})`);
    }
    this.min = min;
    this.max = max;
    this.random = options.random ?? Math.random;
  }

  /** The upper bound of the delay for attempt `n`. */
  ceiling(n: number): number {
    // 2 ** n overflows to Infinity for large n, which Math.min handles.
    return Math.min(this.max, this.min * 2 ** (n + 1));
  }

  /** Number of delays handed out since the last `reset()`. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next attempt, in milliseconds. */
  next(): number {
    const top = this.ceiling(this.attempt);
    this.attempt += 1;
    const r = Math.min(Math.max(this.random(), 0), 1);
    return Math.round(this.min + r * (top - this.min));
  }

  /** Start over from the smallest window (after a successful `welcome`). */
  reset(): void {
    this.attempt = 0;
  }
}
