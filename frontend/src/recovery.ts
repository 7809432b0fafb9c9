/**
 * Recovery across reconnects (see "Recovery" in docs/protocol.md): what the client
 * remembers of the `signal` frames it saw, so that it can ask for the ones it
 * missed and never run handlers twice for one message.
 *
 * - per group alias `g`, the greatest `seq` seen, with the history epoch `e`
 *   (a new epoch forgets every seq: they mean nothing in the new history);
 * - the `resume` object of the next `hello`: `{e, seqs: {alias: seq}}`;
 * - the last 1,000 message ids handled (a replay may offer a message again
 *   through another group);
 * - `resync`: history cannot fill the gap, so the group's seq is dropped.
 */

/** Why the server sent `resync`. */
export type ResyncReason = "layer_outage" | "history" | "epoch";

/** `detail` of the client's `resync` event. */
export interface ResyncDetail {
  /** `layer_outage`, `history` or `epoch` (kept as sent if the server names a newer one). */
  reason: ResyncReason | (string & {});
  /** The group alias the gap is in; `null`: every group. */
  group: string | null;
  /** `layer_outage`: Unix seconds when the outage began. */
  since?: number;
  /** `layer_outage`: Unix seconds when delivery worked again. */
  at?: number;
}

/** The `resume` field of `hello`. */
export interface ResumeState {
  e: string | number;
  seqs: Record<string, string>;
}

/** How many message ids are remembered for deduplication. */
export const RECENT_IDS = 1000;

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

/** The recovery bookkeeping of one client. */
export class Recovery {
  /** The history epoch of the stored seqs. */
  private epoch: string | number | undefined;
  /** Group alias → greatest seq seen. */
  private readonly seqs = new Map<string, string>();
  /** Message ids handled, oldest first (a Set iterates in insertion order). */
  private readonly ids = new Set<string>();

  constructor(private readonly maxIds = RECENT_IDS) {}

  /**
   * Note a `signal` frame: its `g`/`seq`/`e`, and its `id`. Returns false when
   * the id was handled already (its handlers must not run again).
   */
  signal(frame: { g?: unknown; seq?: unknown; e?: unknown; id?: unknown }): boolean {
    this.track(frame.g, frame.seq, frame.e);
    if (frame.id === undefined || frame.id === null) return true;
    const id = String(frame.id);
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.maxIds) this.ids.delete(this.ids.values().next().value as string);
    return true;
  }

  /**
   * History cannot fill a gap in group `g`. The server says where the group stands now
   * (`seq`, `e`): resume from there next time. Without `g` (a channel-layer outage) the
   * stored seqs stay: the history may still hold what was missed.
   */
  resynced(g: string | null | undefined, seq?: unknown, e?: unknown): void {
    if (g === undefined || g === null) return;
    this.seqs.delete(g);
    if (e !== undefined && e !== this.epoch) return; // a new epoch arrives with its positions
    if (typeof seq === "string" && seqParts(seq)) this.seqs.set(g, seq);
  }

  /**
   * The `welcome` frame's positions: where each of the window's groups stands. Groups
   * this client has seen nothing of start from there, so a drop before their first
   * message can still be resumed; a new epoch replaces everything.
   */
  positions(e: unknown, seqs: unknown): void {
    if ((typeof e !== "string" && typeof e !== "number") || typeof seqs !== "object" || seqs === null) return;
    if (e !== this.epoch) {
      this.seqs.clear();
      this.epoch = e;
    }
    for (const [g, seq] of Object.entries(seqs as Record<string, unknown>)) {
      if (typeof seq === "string" && seqParts(seq) && !this.seqs.has(g)) this.seqs.set(g, seq);
    }
  }

  /** The `resume` field for the next `hello`, or `undefined` when there is nothing to resume. */
  resume(): ResumeState | undefined {
    if (this.epoch === undefined || this.seqs.size === 0) return undefined;
    return { e: this.epoch, seqs: Object.fromEntries(this.seqs) };
  }

  private track(g: unknown, seq: unknown, e: unknown): void {
    if (typeof e !== "string" && typeof e !== "number") return; // no history on this message
    if (e !== this.epoch) {
      this.seqs.clear();
      this.epoch = e;
    }
    if (typeof g !== "string" || !g || typeof seq !== "string" || !seqParts(seq)) return;
    const last = this.seqs.get(g);
    if (last === undefined || compareSeq(seq, last) > 0) this.seqs.set(g, seq);
  }
}
