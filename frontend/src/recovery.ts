/**
 * Recovery across reconnects (see "Recovery" in docs/protocol.md): what the client
 * remembers of the `signal` frames it saw, so that it can ask for the ones it
 * missed and never run handlers twice for one message.
 *
 * - per group alias `g`, the last *contiguous* `seq` (seqs are `"N-0"`; `"N-0"`
 *   continues a group standing at `"M-0"` when N == M + 1), with the history
 *   epoch `e` (a new epoch forgets every seq: they mean nothing in the new
 *   history). A frame beyond it opens a gap: the
 *   frames after the gap are handled at once, late frames closing it are still
 *   handled (once, known by id or position), and a gap still open after a
 *   deadline makes the client reconnect and resume from the contiguous position,
 *   so the server replays what
 *   is missing (or answers `resync`). A message sent to several groups reaches a
 *   window once; its `o` field lists its positions in the other groups;
 * - the `resume` object of the next `hello`: `{e, seqs: {alias: seq}}`, the
 *   contiguous positions;
 * - the last 1,000 message ids handled (a replay may offer a message again
 *   through another group), and as many positions (`alias:seq`, of the frame's
 *   group and of its `o`) seen in the current epoch: protocol 2 sends no ids, a
 *   position names one message just as well;
 * - `resync`: history cannot fill the gap, so the group's seq is dropped.
 */

/**
 * Why messages may be lost: the server's `resync` reasons (`layer_outage`, `history`,
 * `epoch`, `overloaded`), or `gap`: a gap in a group's seqs stayed open after a
 * reconnect meant to fill it (the client gave up waiting for it).
 */
export type ResyncReason = "layer_outage" | "history" | "epoch" | "overloaded" | "gap";

/** `detail` of the client's `resync` event. */
export interface ResyncDetail {
  /** See `ResyncReason` (kept as sent if the server names a newer one). */
  reason: ResyncReason | (string & {});
  /** The group alias the gap is in; `null`: every group. */
  group: string | null;
  /** `layer_outage`: Unix seconds when the outage began. */
  since?: number;
  /** `layer_outage`: Unix seconds when delivery worked again. */
  at?: number;
  /** `overloaded`: the live resource whose events were dropped. */
  resource?: string;
}

/** The `resume` field of `hello`. */
export interface ResumeState {
  e: string | number;
  seqs: Record<string, string>;
}

/** How many message ids (and as many positions) are remembered for deduplication. */
export const RECENT_IDS = 1000;
/**
 * Seqs past a gap after which the gap is overdue at once (the client reconnects without
 * waiting); one group remembers at most twice as many.
 */
export const MAX_AHEAD = 1000;

const SEQ = /^(\d+)(?:-(\d+))?$/;

/** The two numbers of a seq (`"1732200000000-3"`) as digit strings without leading zeros; `null` if it is not one. */
function seqParts(seq: string): [string, string] | null {
  const m = SEQ.exec(seq);
  if (!m) return null;
  return [trimZeros(m[1]!), trimZeros(m[2] ?? "0")];
}

function trimZeros(digits: string): string {
  return digits.replace(/^0+(?=\d)/, "");
}

/** Compare two non-negative integers written in decimal without leading zeros (any size). */
function compareDigits(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Order two seqs as (number before the dash, number after): negative when `a`
 * comes first, positive when it comes after, 0 when equal. `"10-0" > "9-5"`.
 * Throws a `TypeError` for a string that is not a seq.
 */
export function compareSeq(a: string, b: string): number {
  const pa = seqParts(a);
  const pb = seqParts(b);
  if (!pa || !pb) throw new TypeError(`floorchannels: not a seq: ${JSON.stringify(pa ? b : a)}`);
  return compareDigits(pa[0], pb[0]) || compareDigits(pa[1], pb[1]);
}

/** The counter of a `"N-0"` seq, for contiguity; `null` for any other form (no gap detection). */
function counter(seq: string): bigint | null {
  const parts = seqParts(seq);
  return parts && parts[1] === "0" ? BigInt(parts[0]) : null;
}

/** A gap in one group: what arrived past it, and when it opened. */
interface Gap {
  ahead: Set<bigint>;
  openedAt: number;
  /** A reconnect was made to fill it: if it is still open at the deadline, give up. */
  retried: boolean;
}

/** The recovery bookkeeping of one client. */
export class Recovery {
  /** The history epoch of the stored seqs. */
  private epoch: string | number | undefined;
  /** Group alias → last contiguous seq. */
  private readonly seqs = new Map<string, string>();
  /** Group alias → its open gap. */
  private readonly gaps = new Map<string, Gap>();
  /** Message ids handled, oldest first (a Set iterates in insertion order). */
  private readonly ids = new Set<string>();
  /** Positions (`alias:seq`) seen in this epoch, oldest first. */
  private readonly seen = new Set<string>();

  constructor(
    private readonly maxIds = RECENT_IDS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The history epoch of the stored seqs (a protocol 2 signal without `e` is in it). */
  get currentEpoch(): string | number | undefined {
    return this.epoch;
  }

  /**
   * Note a `signal` frame: its `g`/`seq`/`e` (and `o`, its positions in other groups),
   * and its `id`. Returns false when it was handled already (its handlers must not run
   * again): its id was, or one of its positions was seen (a protocol 2 frame has no id).
   */
  signal(frame: { g?: unknown; seq?: unknown; e?: unknown; o?: unknown; id?: unknown }): boolean {
    let seenBefore = false;
    if (this.sameEpoch(frame.e)) {
      const positions: [unknown, unknown][] = [[frame.g, frame.seq]];
      this.track(frame.g, frame.seq, true);
      if (frame.o && typeof frame.o === "object") {
        // Only groups this window is in: their positions came with welcome.
        for (const [g, seq] of Object.entries(frame.o as Record<string, unknown>)) {
          this.track(g, seq, false);
          positions.push([g, seq]);
        }
      }
      for (const [g, seq] of positions) {
        if (typeof g === "string" && g && typeof seq === "string" && !remember(this.seen, `${g}:${seq}`, this.maxIds)) {
          seenBefore = true;
        }
      }
    }
    if (frame.id === undefined || frame.id === null) return !seenBefore;
    return remember(this.ids, String(frame.id), this.maxIds) && !seenBefore;
  }

  /**
   * Where group `g` stands as the window enters it (a topic joined): a drop before its
   * first message still resumes it from there. No message is at that position for this
   * window, so none is marked seen.
   */
  entered(g: string, e: unknown, seq: unknown): void {
    if (this.sameEpoch(e)) this.track(g, seq, true);
  }

  /**
   * History cannot fill a gap in group `g`. The server says where the group stands now
   * (`seq`, `e`): resume from there next time. Without `g` (a channel-layer outage) the
   * stored seqs stay: the history may still hold what was missed.
   */
  resynced(g: string | null | undefined, seq?: unknown, e?: unknown): void {
    if (g === undefined || g === null) return;
    this.seqs.delete(g);
    this.gaps.delete(g);
    if (e !== undefined && e !== this.epoch) return; // a new epoch arrives with its positions
    if (typeof seq === "string" && seqParts(seq)) this.seqs.set(g, seq);
  }

  /**
   * The `welcome` frame's positions: where each of the window's groups stands. Groups
   * this client has seen nothing of start from there, so a drop before their first
   * message can still be resumed; a new epoch replaces everything. Groups it lists no
   * more are forgotten: the window is not in them (a new key for a new window left the
   * old window's group behind), and their seqs would only lengthen every `hello`. Gaps
   * still open get a full deadline from now: the replay that follows may fill them.
   */
  positions(e: unknown, seqs: unknown): void {
    if ((typeof e !== "string" && typeof e !== "number") || typeof seqs !== "object" || seqs === null) return;
    this.sameEpoch(e);
    const listed = seqs as Record<string, unknown>;
    for (const g of Array.from(this.seqs.keys())) {
      if (!Object.prototype.hasOwnProperty.call(listed, g)) {
        this.seqs.delete(g);
        this.gaps.delete(g);
      }
    }
    for (const [g, seq] of Object.entries(listed)) {
      if (typeof seq === "string" && seqParts(seq) && !this.seqs.has(g)) this.seqs.set(g, seq);
    }
    const now = this.now();
    for (const gap of this.gaps.values()) gap.openedAt = now;
  }

  /** The `resume` field for the next `hello`, or `undefined` when there is nothing to resume. */
  resume(): ResumeState | undefined {
    if (this.epoch === undefined || this.seqs.size === 0) return undefined;
    return { e: this.epoch, seqs: Object.fromEntries(this.seqs) };
  }

  /** When the oldest open gap opened (ms, the clock given), or `undefined` when none is open. */
  oldestGap(): number | undefined {
    let oldest: number | undefined;
    for (const gap of this.gaps.values()) {
      if (gap.ahead.size > MAX_AHEAD && !gap.retried) return -Infinity; // too far behind: at once
      if (oldest === undefined || gap.openedAt < oldest) oldest = gap.openedAt;
    }
    return oldest;
  }

  /**
   * The deadline has passed for gaps opened before `before`. Those not yet retried are
   * marked so, and `reconnect` says the caller should reconnect to have them replayed;
   * those a reconnect did not fill are given up: the group moves on to the greatest seq
   * seen, and `abandoned` lists their aliases (the caller reports a resync for each).
   */
  overdue(before: number): { reconnect: boolean; abandoned: string[] } {
    const abandoned: string[] = [];
    let reconnect = false;
    for (const [g, gap] of this.gaps) {
      const full = gap.ahead.size > MAX_AHEAD;
      if (gap.openedAt > before && !full) continue;
      if (!gap.retried) {
        gap.retried = true;
        reconnect = true;
        continue;
      }
      let last = 0n;
      for (const n of gap.ahead) if (n > last) last = n;
      this.seqs.set(g, `${last}-0`);
      this.gaps.delete(g);
      abandoned.push(g);
    }
    return { reconnect, abandoned };
  }

  /** True (and the stored seqs forgotten if it changed) when `e` is a history epoch. */
  private sameEpoch(e: unknown): boolean {
    if (typeof e !== "string" && typeof e !== "number") return false; // no history on this message
    if (e !== this.epoch) {
      this.seqs.clear();
      this.gaps.clear();
      this.seen.clear(); // positions restart in a new history
      this.epoch = e;
    }
    return true;
  }

  /**
   * Move group `g` on past `seq`. A group without a position yet starts at `seq` when
   * `start` is set (the frame's own group), and is left alone otherwise (an `o` entry
   * for a group this window is not in).
   */
  private track(g: unknown, seq: unknown, start: boolean): void {
    if (typeof g !== "string" || !g || typeof seq !== "string" || !seqParts(seq)) return;
    const last = this.seqs.get(g);
    if (last === undefined) {
      if (start) this.seqs.set(g, seq);
      return;
    }
    if (compareSeq(seq, last) <= 0) return; // seen already, or closing nothing
    const n = counter(seq);
    let position = counter(last);
    if (n === null || position === null) {
      this.seqs.set(g, seq); // not "N-0": no contiguity to check, keep the greatest
      return;
    }
    const gap = this.gaps.get(g);
    if (n !== position + 1n) {
      if (gap) {
        if (gap.ahead.size < 2 * MAX_AHEAD) gap.ahead.add(n); // bounded: the replay brings the rest
      } else this.gaps.set(g, { ahead: new Set([n]), openedAt: this.now(), retried: false });
      return;
    }
    position = n;
    if (gap) {
      while (gap.ahead.delete(position + 1n)) position += 1n;
      if (gap.ahead.size === 0) this.gaps.delete(g);
    }
    this.seqs.set(g, `${position}-0`);
  }
}

/** Add `key` to `recent` (bounded to `max`, oldest out first); false when it was there already. */
function remember(recent: Set<string>, key: string, max: number): boolean {
  if (recent.has(key)) return false;
  recent.add(key);
  if (recent.size > max) recent.delete(recent.values().next().value as string);
  return true;
}
