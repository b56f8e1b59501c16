// How many full batches one key may have at Vault at once (issue 11 §2b): enough to keep Vault's cores busy, no
// more. Pure logic, no I/O: the batcher reports each full batch's round trip and reads the limit.
//
// The signal is Vault's latency for a full batch (same item count, so the same work). While Vault has idle cores, a
// call more in flight takes as long as one alone and the limit grows by one; once Vault's cores are busy, calls
// queue inside Vault and each takes longer: past twice the lowest latency seen lately, the limit shrinks by one
// (TCP Vegas's rule, applied to Vault calls), down to a floor of two: with one full batch at Vault, Vault idles
// while the answer travels back and Signet assembles its tokens, so two keep it fed. A fleet of sidecars sharing one
// Vault cluster backs off together, because each sees the same latency. The limit changes at most once per round
// trip (only calls sent after the last change say anything about it), on a smoothed round trip, so one slow
// answer (a GC pause, a busy core) does not move it.

export interface InFlightLimitOptions {
  /** Hard ceiling (batching.max_in_flight). */
  ceiling: number;
  /** Where the limit starts, and the least it goes down to (capped by the ceiling). */
  floor: number;
  /** How long the lowest latency seen stays the baseline, ms: Vault's pace changes (other sidecars, a failover). */
  baselineWindowMs: number;
}

export const DEFAULT_IN_FLIGHT_LIMIT: Omit<InFlightLimitOptions, 'ceiling'> = { floor: 2, baselineWindowMs: 10_000 };

/** Below this ratio of a round trip to the baseline, Vault has room for one more call. */
const GROW_BELOW = 1.5;
/** Above it, calls queue inside Vault: one fewer. */
const SHRINK_ABOVE = 2;

export class InFlightLimit {
  readonly #ceiling: number;
  readonly #windowMs: number;
  readonly #floor: number;
  #limit: number;
  /** Smoothed round trip of full batches, ms. */
  #smoothedMs: number | undefined;
  /** Lowest round trip of the current and of the previous window: the baseline is the lower of the two. */
  #windowMin = Infinity;
  #previousMin = Infinity;
  #windowStart: number | undefined;
  /** When the limit last changed (performance.now()): calls sent before it do not count. */
  #changedAt = -Infinity;

  constructor(options: InFlightLimitOptions) {
    this.#ceiling = Math.max(1, options.ceiling);
    this.#windowMs = options.baselineWindowMs;
    this.#floor = Math.min(this.#ceiling, Math.max(1, options.floor));
    this.#limit = this.#floor;
  }

  /** Full batches that may be at Vault at once now. */
  get value(): number {
    return this.#limit;
  }

  /** Vault's lowest recent round trip for a full batch, ms (Infinity before the first). */
  get baselineMs(): number {
    return Math.min(this.#windowMin, this.#previousMin);
  }

  /**
   * A full batch sent at `sentAt` came back after `ms` (performance.now() times), answered. Failed calls are not
   * reported: a timeout says nothing about Vault's pace, and the breaker and the deadlines handle outages.
   */
  observe(sentAt: number, ms: number, now: number): void {
    if (this.#windowStart === undefined || now - this.#windowStart >= this.#windowMs) {
      this.#previousMin = this.#windowStart === undefined ? Infinity : this.#windowMin;
      this.#windowMin = Infinity;
      this.#windowStart = now;
    }
    this.#windowMin = Math.min(this.#windowMin, ms);
    this.#smoothedMs = this.#smoothedMs === undefined ? ms : this.#smoothedMs * 0.5 + ms * 0.5;
    if (sentAt < this.#changedAt) return;
    const ratio = this.#smoothedMs / this.baselineMs;
    if (ratio < GROW_BELOW && this.#limit < this.#ceiling) {
      this.#limit++;
      this.#changedAt = now;
    } else if (ratio > SHRINK_ABOVE && this.#limit > this.#floor) {
      this.#limit--;
      this.#changedAt = now;
    }
  }
}
