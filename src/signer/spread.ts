// Whether a lone caller batch is spread over several Vault calls (batching.lone_batch_calls), decided by what
// spreading has bought lately. Vault signs the items of one call one after another; a Vault with idle cores signs
// the pieces of a spread batch side by side and the batch comes back sooner, but a Vault with one core (a pod
// limited to one CPU: Go then runs one thread of Go code) signs them one after another and pays each extra call's
// overhead, so the batch comes back later. So each key's lone batches go the way that has been faster per item
// (switching only when the other is clearly faster), and every EXPLORE_EVERY-th goes the other way, because
// Vault's capacity changes (other sidecars, a failover).
// Pure logic, no I/O: the batcher reports each lone batch's round trip and asks before the next.

/** One lone batch in this many is sent the way that is not (yet) the faster one, to keep both estimates current. */
export const EXPLORE_EVERY = 16;

/**
 * Weight of the newest round trip in the average of the way in use, which gets most lone batches: one batch's
 * round trip is noisy (GC, a busy core).
 */
const WEIGHT = 0.1;

/**
 * Weight of the newest round trip in the average of the way not in use, which gets one lone batch in EXPLORE_EVERY:
 * heavier, so that a stale estimate (made while the process was cold, or before Vault changed) is corrected within
 * a few of its turns, not hundreds of batches.
 */
const EXPLORE_WEIGHT = 0.4;

/** The other way is taken only once it is this much faster than the way in use (no flapping on noise). */
const MARGIN = 0.9;

/** Round trips per item of one way's lone batches: their moving average, and how many came back. */
interface Way {
  msPerItem: number | undefined;
  batches: number;
}

export class SpreadChoice {
  readonly #whole: Way = { msPerItem: undefined, batches: 0 };
  readonly #spread: Way = { msPerItem: undefined, batches: 0 };
  /** The way in use once both are known. */
  #spreading: boolean | undefined;
  #decisions = 0;

  /**
   * Whether the next lone batch is spread: first each way in turn until both are known, then the faster way (kept
   * until the other is clearly faster), and the other way every EXPLORE_EVERY-th time.
   */
  next(): boolean {
    this.#decisions++;
    const spreadMs = this.#spread.msPerItem;
    const wholeMs = this.#whole.msPerItem;
    if (spreadMs === undefined || wholeMs === undefined) return this.#spread.batches <= this.#whole.batches;
    if (this.#spreading === undefined) this.#spreading = spreadMs < wholeMs;
    else if (this.#spreading && wholeMs < spreadMs * MARGIN) this.#spreading = false;
    else if (!this.#spreading && spreadMs < wholeMs * MARGIN) this.#spreading = true;
    return this.#decisions % EXPLORE_EVERY === 0 ? !this.#spreading : this.#spreading;
  }

  /**
   * A lone batch came back whole (every call answered): how it was sent and its round trip per item, ms. Each way's
   * first batch is not counted: it opens the connection its calls need and runs code V8 has not optimised yet (the
   * first lone batch of a process took 2-3 times as long as the tenth, measured end to end), and counted, it would
   * hold the way it went back for hundreds of batches.
   */
  record(spread: boolean, msPerItem: number): void {
    const way = spread ? this.#spread : this.#whole;
    way.batches++;
    if (way.batches === 1) return;
    const weight = this.#spreading === undefined || this.#spreading === spread ? WEIGHT : EXPLORE_WEIGHT;
    way.msPerItem = way.msPerItem === undefined ? msPerItem : way.msPerItem * (1 - weight) + msPerItem * weight;
  }
}
