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

/** Weight of the newest round trip in each moving average: one batch's round trip is noisy (GC, a busy core). */
const WEIGHT = 0.1;

/** The other way is taken only once it is this much faster than the way in use (no flapping on noise). */
const MARGIN = 0.9;

export class SpreadChoice {
  /** Round trip per item of lone batches sent whole, and spread, ms (moving averages; undefined until one came back). */
  #wholeMs: number | undefined;
  #spreadMs: number | undefined;
  /** The way in use once both are known. */
  #spreading: boolean | undefined;
  #decisions = 0;

  /**
   * Whether the next lone batch is spread: first once each way, then the faster way (kept until the other is
   * clearly faster), and the other way every EXPLORE_EVERY-th time.
   */
  next(): boolean {
    this.#decisions++;
    if (this.#spreadMs === undefined) return true;
    if (this.#wholeMs === undefined) return false;
    if (this.#spreading === undefined) this.#spreading = this.#spreadMs < this.#wholeMs;
    else if (this.#spreading && this.#wholeMs < this.#spreadMs * MARGIN) this.#spreading = false;
    else if (!this.#spreading && this.#spreadMs < this.#wholeMs * MARGIN) this.#spreading = true;
    return this.#decisions % EXPLORE_EVERY === 0 ? !this.#spreading : this.#spreading;
  }

  /** A lone batch came back whole (every call answered): how it was sent and its round trip per item, ms. */
  record(spread: boolean, msPerItem: number): void {
    if (spread) this.#spreadMs = this.#spreadMs === undefined ? msPerItem : this.#spreadMs * (1 - WEIGHT) + msPerItem * WEIGHT;
    else this.#wholeMs = this.#wholeMs === undefined ? msPerItem : this.#wholeMs * (1 - WEIGHT) + msPerItem * WEIGHT;
  }
}
