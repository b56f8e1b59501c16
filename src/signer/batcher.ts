// Opportunistic batching of concurrent signs (DESIGN §9). Per (key, version) lane: when no Vault call is out, a
// request goes out at once (no added latency at low load); otherwise it waits, and everything waiting leaves
// together as one batch_input call when a call returns. A batch is bounded by item count and by the Vault time it
// is expected to cost (Vault signs the items of one batch one after another). A full batch does not wait: it
// leaves while fewer full batches are at Vault than Vault's latency says its cores can take (InFlightLimit), up to
// max_in_flight. So under load batches grow as large as the traffic allows (Vault's CPU per token falls with the
// batch size) and a backlog still keeps Vault's cores busy. A caller's own batch_input that finds its lane idle is
// the one exception: it is spread over a few calls that leave as soon as each is queued (see loneBatchCalls). When
// a call ends, the next batch leaves before its waiters are settled, so Vault never waits on Signet's assembly of
// an answer. The queue is bounded: past it, a request is refused at once instead of growing memory.

import { SignetError, VaultItemMissingError, VaultItemRefusedError, VaultUnavailableError, VersionBelowMinimumError } from '../errors.ts';
import type { AlgSpec } from '../jwt/algorithms.ts';
import type { ItemResult } from '../vault/transit.ts';
import { DEFAULT_IN_FLIGHT_LIMIT, InFlightLimit } from './in-flight.ts';
import { SpreadChoice } from './spread.ts';

export interface BatcherOptions {
  enabled: boolean;
  /** Vault calls in flight per lane, at most: the ceiling of the adaptive limit on full batches. */
  maxInFlight: number;
  /**
   * Full batches per key the adaptive limit keeps at Vault at least (its floor; where it starts). 2 by default: with
   * one, Vault idles during every round trip. More suits a Vault that serves this Signet alone on cores they share,
   * where round trips grow with the CPU the two take from each other rather than with calls queued in Vault, so the
   * limit would not grow; with a fleet on one Vault each sidecar keeps at least this many calls there under overload.
   */
  minInFlight: number;
  /**
   * Vault calls in flight per lane that may carry a batch that is not full. 1 lets the signs that arrive while a call
   * is out gather into one batch (the least Vault CPU per token); more trades Vault's CPU for a little latency.
   */
  partialInFlight: number;
  /**
   * Vault calls a lone batch may be spread over: a caller's batch_input (see together()) that finds its lane idle
   * and fits one batch leaves as up to this many calls of at least MIN_PIECE_MS of Vault work each, each sent as
   * soon as it is queued. Vault signs a batch's items one after another on one core; spread, an idle Vault signs it
   * on that many cores, starts before Signet has encoded the last claim set, and Signet turns the first answer into
   * tokens while Vault signs the rest. Costs Vault one call's overhead per extra call (about 0.4 ms of CPU), only
   * while the lane is otherwise idle; signs that gathered behind a call always leave whole. Whether a key's lone
   * batches are spread follows what spreading bought lately (SpreadChoice): a one-core Vault gets them whole.
   * 1: a batch always leaves whole.
   */
  loneBatchCalls: number;
  /**
   * Items per Vault call, at most (the cost bound may lower it). Above fullBatchSize only when a backlog exceeds
   * what the free calls take in full batches: then the calls that may leave carry it in fewer, larger batches (less
   * of Vault's and Signet's CPU per token: each call costs Vault about 0.4 ms beside its items).
   */
  maxBatchSize: number;
  /**
   * Items from which a batch is full: it leaves without waiting for a call to end while the adaptive limit allows,
   * and the limit counts it. A backlog is spread over the calls that may leave, each between this and maxBatchSize,
   * so Vault gets as many calls as its cores take (it signs one call's items one after another on one core). For a
   * costlier alg a batch is full with fewer items: as many as carry the Vault work of this many cheap ones.
   */
  fullBatchSize: number;
  /** Expected Vault time per batch, ms. */
  maxBatchCostMs: number;
  /** Requests waiting per lane before new ones are refused. */
  maxQueue: number;
  /** Longest a request waits for its signature, ms (the caller's deadline: sign_timeout), queueing included. */
  maxWaitMs: number;
  /**
   * Process-wide bound on the signing inputs held (waiting or in flight), bytes, across every key and version:
   * what keeps a burst of large bodies over many keys inside the container's memory limit.
   */
  maxPendingBytes: number;
}

export const DEFAULT_BATCHER: BatcherOptions = {
  enabled: true,
  maxInFlight: 16,
  minInFlight: DEFAULT_IN_FLIGHT_LIMIT.floor,
  partialInFlight: 1,
  loneBatchCalls: 2,
  maxBatchSize: 256,
  fullBatchSize: 64,
  maxBatchCostMs: 25,
  maxQueue: 2048,
  maxWaitMs: 2000,
  maxPendingBytes: 16 * 1024 * 1024,
};

/** Vault CPU time of one signature of the cheap algs (ECDSA P-256, Ed25519, HMAC), ms. */
const CHEAP_ITEM_MS = 0.05;

/** Approximate Vault CPU time of one signature, ms (measured on Vault's Go crypto). */
export function itemCostMs(keyType: string): number {
  switch (keyType) {
    case 'rsa-2048': return 1.5;
    case 'rsa-3072': return 4.5;
    case 'rsa-4096': return 10;
    case 'ecdsa-p384': return 0.3;
    case 'ecdsa-p521': return 0.6;
    default: return CHEAP_ITEM_MS;
  }
}

/**
 * The error of one refused batch item. An operator who raises min_encryption_version makes Vault refuse the
 * version Signet chose a moment earlier: that gets its own code, so the signer can re-read the key and sign again.
 */
export function itemError(message: string): SignetError {
  if (/less than the minimum encryption key version/.test(message)) {
    return new VersionBelowMinimumError(`Vault refused the key version: ${message.slice(0, 200)}`);
  }
  return new VaultItemRefusedError(`Vault refused to sign: ${message.slice(0, 200)}`);
}

/**
 * Sends one batch. `deadline` (a performance.now() time) is the latest caller deadline in the batch: past it no
 * caller can use the answer, so the Vault call may be abandoned then. Callers whose own deadline comes earlier are
 * answered at their deadline without aborting the call (an abort would read as Vault's silence).
 */
export type SendBatch = (lane: LaneKey, inputs: string[], deadline: number) => Promise<ItemResult[]>;

export interface LaneKey {
  name: string;
  version: number;
  keyType: string;
  spec: AlgSpec;
}

/**
 * Told once per sign, with Vault's `vault:vN:...` signature or the error that ended it, and the `index` the sign was
 * submitted with. May be called synchronously from submit() (a sign refused before it queues).
 */
export type SignSettled = (index: number, signature: string | undefined, error: Error | undefined) => void;

/**
 * A sign waiting for its signature. A callback and an index rather than a promise per sign: a caller's batch of 64
 * shares one callback (and one promise, see Signer.signBatch), which keeps the per-item work off the microtask queue.
 */
interface Waiting {
  input: string;
  /** performance.now() after which the request gives up. */
  deadline: number;
  /** What it holds against max_pending_bytes, released when it settles. */
  bytes: number;
  settled: boolean;
  index: number;
  done: SignSettled;
}

/**
 * A lane's signs inside together(). A lone batch (the lane idle when its first sign arrived, all of it one batch,
 * enough Vault work to spread) leaves in `piecesLeft` calls of `pieceSize` when spread, each as soon as it is
 * queued, or whole when together() ends; its round trip is recorded for the key's SpreadChoice. Anything else
 * leaves the usual way when together() ends.
 */
interface HeldLane {
  lone: boolean;
  spread: boolean;
  pieceSize: number;
  /** Pieces not yet sent (the last one leaves when together() ends). */
  piecesLeft: number;
  /**
   * This batch's signs queued since its last piece left: the tail of the lane's queue (they are queued within one
   * start() turn). Only they leave in its pieces: other callers' signs that joined the lane while the batch waited
   * for a piece's write are queued ahead of them and leave the usual way, within the batch limits.
   */
  pending: number;
  /** The lone batch's calls so far, their items, those answered, and when its first sign arrived (performance.now()). */
  calls: number;
  items: number;
  answered: number;
  failed: boolean;
  /** Every call of the batch has left (its round trip is recorded only then). */
  sent: boolean;
  started: number;
}

/** A caller's batch inside together(): how many signs it starts, the lanes they reach with their plans. */
interface HeldBatch {
  items: number;
  lanes: Map<Lane, HeldLane>;
  /** A piece of a spread lone batch left during the current start(): the next items wait for its write. */
  pieceSent: boolean;
}

interface Lane {
  id: string;
  key: LaneKey;
  /** Removed from the lane map (empty and idle); a sign for its key version then makes a new lane. */
  retired: boolean;
  queue: Waiting[];
  inFlight: number;
  /** Calls out carrying fewer items than the batch limit. */
  partialInFlight: number;
  /** Rejects waiters past their deadline while the queue is not empty (a hung Vault must not hold them). */
  sweeper?: NodeJS.Timeout;
  /** Whether the lane's last Vault call failed as a whole (silence, 5xx, refusal) rather than answered. */
  lastCallFailed: boolean;
}

export interface BatchObserver {
  (key: string, size: number): void;
}

/**
 * Margin on Vault's expected call time when deciding whether a sign can still be answered in time: a call that
 * starts with less left than this is likely to outlive its caller, wasting Vault's work.
 */
const SAFETY = 1.5;

/**
 * Keys whose calls may carry at least this many items (the call cap: cheap algs, RSA-2048 included) have an adaptive
 * limit; costlier ones 2.
 */
const MIN_ADAPTIVE_BATCH = 16;

/**
 * Least expected Vault work of one piece of a spread lone batch, ms: well above what a call costs Vault beside
 * its items (about 0.4 ms of CPU measured on Vault 1.21), so spreading shortens the batch's round trip.
 */
const MIN_PIECE_MS = 1;

/** Why a request was refused before it reached Vault: Signet's own limits, not Vault's health. */
function overloaded(message: string): VaultUnavailableError {
  return new VaultUnavailableError('sign', `Signet is overloaded: ${message}; retry shortly`, 1, 'overloaded');
}

/** Why a request waited out its sign_timeout in the queue while Vault's calls hung or failed: Vault, not Signet. */
function vaultTooSlow(name: string): VaultUnavailableError {
  return new VaultUnavailableError('sign', `no Vault call for key "${name}" could start within sign_timeout; Vault is slow or away`, 1, 'unreachable');
}

export class SignBatcher {
  readonly #options: BatcherOptions;
  readonly #send: SendBatch;
  readonly #observe: BatchObserver;
  readonly #lanes = new Map<string, Lane>();
  /** Expected duration of a full batch's Vault call per key, ms: a moving average of what Vault took lately. */
  readonly #latencyMs = new Map<string, number>();
  /** Full batches each key may have at Vault at once, adapted to Vault's latency (batching on only). */
  readonly #fullLimits = new Map<string, InFlightLimit>();
  /** Per key: whether spreading its lone batches has been faster than sending them whole. */
  readonly #spreadChoices = new Map<string, SpreadChoice>();
  #pendingBytes = 0;
  /** The lane of the last sign: a caller's batch submits every item with one LaneKey, so one id and lookup serve all. */
  #recent: Lane | undefined;
  /** The caller's batch whose start() is running (see together()); undefined otherwise. */
  #held: HeldBatch | undefined;

  constructor(options: BatcherOptions, send: SendBatch, observe: BatchObserver = () => {}) {
    // Batching off: every sign is its own call, up to 64 (or max_in_flight) at once, a fixed bound.
    this.#options = options.enabled ? options : { ...options, maxBatchSize: 1, fullBatchSize: 1, loneBatchCalls: 1, maxInFlight: Math.max(options.maxInFlight, 64), partialInFlight: Math.max(options.maxInFlight, 64) };
    this.#send = send;
    this.#observe = observe;
  }

  /** Requests waiting (not yet sent) across all lanes of a key. */
  queued(name: string): number {
    let total = 0;
    for (const lane of this.#lanes.values()) if (lane.key.name === name) total += lane.queue.length;
    return total;
  }

  /** Bytes of signing input held by requests waiting or in flight, across every lane. */
  pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Vault calls in flight across all lanes of a key. */
  inFlight(name: string): number {
    let total = 0;
    for (const lane of this.#lanes.values()) if (lane.key.name === name) total += lane.inFlight;
    return total;
  }

  /** Full batches of a key that may be at Vault at once now (the adaptive limit; batching off: the fixed bound). */
  callLimit(name: string): number {
    if (!this.#options.enabled) return this.#options.maxInFlight;
    return this.#fullLimits.get(name)?.value ?? Math.min(this.#options.minInFlight, this.#options.maxInFlight);
  }

  /**
   * Signs one input (standard base64); resolves with Vault's `vault:vN:...` signature. `heldBytes`: what the sign
   * holds while pending, counted against max_pending_bytes: its signing input, which a digest input does not show.
   * `since` (performance.now()): when the caller's wait began, if before this call (a sign tried again after Vault
   * refused a key version): its deadline counts from then, so a retry gets what is left of sign_timeout, not more.
   */
  sign(key: LaneKey, input: string, heldBytes = input.length, since?: number): Promise<string> {
    const { promise, resolve, reject } = Promise.withResolvers<string>();
    this.submit(key, input, heldBytes, since, 0, (_index, signature, error) => {
      if (error) reject(error);
      else resolve(signature!);
    });
    return promise;
  }

  /**
   * sign() with a callback: `done(index, signature, error)` is called once, synchronously when the sign is refused
   * before it queues (queue full, past its deadline already, max_pending_bytes), later otherwise.
   */
  submit(key: LaneKey, input: string, heldBytes: number, since: number | undefined, index: number, done: SignSettled): void {
    let lane = this.#recent;
    if (lane === undefined || lane.key !== key || lane.retired) {
      const id = `${key.name}\0${key.version}`;
      lane = this.#lanes.get(id);
      if (!lane) {
        lane = { id, key, retired: false, queue: [], inFlight: 0, partialInFlight: 0, lastCallFailed: false };
        this.#lanes.set(id, lane);
      }
      this.#recent = lane;
    }
    const idle = lane.inFlight === 0 && lane.queue.length === 0;
    const refused = this.#enqueue(lane, input, heldBytes, since, index, done);
    if (refused) {
      // A lane made for this sign alone does not stay in the map.
      this.#retire(lane);
      done(index, undefined, refused);
      return;
    }
    if (!this.#held) {
      this.#release(lane);
      return;
    }
    let held = this.#held.lanes.get(lane);
    if (!held) {
      held = this.#plan(lane, idle, this.#held.items);
      this.#held.lanes.set(lane, held);
    }
    held.pending++;
    if (held.piecesLeft > 1 && held.pending >= held.pieceSize && this.#loneMaySend(lane)) {
      // A piece of a lone batch is complete: it leaves now, and together() lets its write go out before the caller's
      // remaining claims are encoded, so Vault signs it meanwhile.
      this.#dispatchLone(lane, held, this.#takePending(lane, held));
      held.piecesLeft--;
      this.#held.pieceSent = true;
    }
  }

  /**
   * Whether a lone batch's piece may leave: its lane was idle when the batch began, but other callers' calls may
   * have filled it while the batch waited for a piece's write, and max_in_flight holds for pieces too (what cannot
   * leave stays queued and leaves the usual way).
   */
  #loneMaySend(lane: Lane): boolean {
    return lane.inFlight < this.#options.maxInFlight;
  }

  /** The signs a held lone batch queued since its last piece (the tail of the lane's queue). */
  #takePending(lane: Lane, plan: HeldLane): Waiting[] {
    const taken = lane.queue.splice(lane.queue.length - plan.pending);
    plan.pending = 0;
    return taken;
  }

  /**
   * Starts a caller's batch_input: `start(index)` for every index below `items`, in order, each starting one sign
   * (submit) or settling it at once, and queues them together: they leave in as few Vault calls as the batch limit
   * allows, not one call per free slot first. A lone batch (its key version idle, all of it one batch) may be
   * spread instead (see loneBatchCalls and SpreadChoice): then each piece but the last leaves as soon as it is
   * queued, and the items after it are started from a setImmediate queued behind it. undici writes a request on a
   * reused keep-alive connection from the check phase (it first lets the idle socket's pending bytes be read), so
   * without that turn every piece would reach Vault only after the last item was encoded. `end` is called once:
   * when every item has been started, or with what `start` threw (the items after it are not started).
   */
  together(items: number, start: (index: number) => void, end: (error?: unknown) => void): void {
    if (this.#held) {
      // Inside another batch's start(): part of that batch (not reached in practice).
      try {
        for (let index = 0; index < items; index++) start(index);
      } catch (error) {
        end(error);
        return;
      }
      end();
      return;
    }
    this.#startFrom({ items, lanes: new Map(), pieceSent: false }, 0, start, end);
  }

  /** Starts a held batch's items from `from` until a piece leaves (the rest follow its write) or all are started. */
  #startFrom(batch: HeldBatch, from: number, start: (index: number) => void, end: (error?: unknown) => void): void {
    this.#held = batch;
    let index = from;
    let failure: { error: unknown } | undefined;
    try {
      while (index < batch.items && !batch.pieceSent) start(index++);
    } catch (error) {
      failure = { error };
    } finally {
      this.#held = undefined;
    }
    if (!failure && index < batch.items) {
      batch.pieceSent = false;
      setImmediate(() => this.#startFrom(batch, index, start, end));
      return;
    }
    for (const [lane, plan] of batch.lanes) {
      // A lone batch (its last piece, or all of it) leaves as it is, timed; anything else the usual way.
      if (plan.lone && plan.pending > 0 && this.#loneMaySend(lane)) this.#dispatchLone(lane, plan, this.#takePending(lane, plan));
      plan.pending = 0;
      plan.sent = true;
      this.#release(lane);
    }
    if (failure) end(failure.error);
    else end();
  }

  /**
   * How a lane's signs inside together() leave: a lone batch when the lane was idle and the batch fits one call
   * and is worth spreading; spread when its key's SpreadChoice says so.
   */
  #plan(lane: Lane, idle: boolean, items: number): HeldLane {
    const pieces = idle && items <= this.#fullSize(lane.key) ? this.#piecesOf(lane.key, items) : 1;
    const lone = pieces > 1;
    let spread = false;
    if (lone) {
      let choice = this.#spreadChoices.get(lane.key.name);
      if (!choice) {
        choice = new SpreadChoice();
        this.#spreadChoices.set(lane.key.name, choice);
      }
      spread = choice.next();
    }
    // Timed from the batch's first sign, before any is encoded: a whole batch leaves only once all are, a spread
    // one while the rest are encoded, and that head start is part of what spreading buys.
    return {
      lone, spread, pieceSize: spread ? Math.ceil(items / pieces) : items, piecesLeft: spread ? pieces : 1, pending: 0,
      calls: 0, items: 0, answered: 0, failed: false, sent: false, started: performance.now(),
    };
  }

  /** Sends a call of a lone batch; when the batch's last call is answered, its round trip per item is recorded. */
  #dispatchLone(lane: Lane, plan: HeldLane, batch: Waiting[]): void {
    const now = performance.now();
    plan.calls++;
    plan.items += batch.length;
    this.#dispatch(lane, batch, batch.length >= this.#fullSize(lane.key), now, (answeredAt) => {
      // A piece may be answered before the batch's last call leaves: the round trip is the last answer's.
      if (answeredAt === undefined) plan.failed = true;
      if (++plan.answered === plan.calls && plan.sent && !plan.failed) {
        this.#spreadChoices.get(lane.key.name)?.record(plan.spread, (answeredAt! - plan.started) / plan.items);
      }
    });
  }

  #release(lane: Lane): void {
    this.#pump(lane);
    if (lane.queue.length > 0 && !lane.sweeper) this.#startSweeper(lane);
  }

  /** Queues a sign, or returns why it is refused (nothing queued then). */
  #enqueue(lane: Lane, input: string, bytes: number, since: number | undefined, index: number, done: SignSettled): Error | undefined {
    const { key } = lane;
    if (lane.queue.length >= this.#options.maxQueue) {
      return overloaded(`the sign queue of key "${key.name}" is full (${this.#options.maxQueue} waiting, batching.max_queue)`);
    }
    const now = performance.now();
    const deadline = (since ?? now) + this.#options.maxWaitMs;
    // Admission: with Vault taking `expected` ms per call, the signs already waiting leave in rounds of
    // limit x the calls Vault takes at once; one that would be answered only after its sign_timeout is refused
    // now, while the caller can still retry elsewhere, instead of holding a place and being shed later.
    const expected = this.#latencyMs.get(key.name);
    if (expected !== undefined) {
      const perRound = this.#fullSize(key) * Math.max(this.#options.partialInFlight, this.#fullLimit(key));
      const answeredIn = (Math.floor(lane.queue.length / perRound) + 1) * expected * SAFETY;
      if (answeredIn > deadline - now) {
        return overloaded(`${lane.queue.length} signs of key "${key.name}" are waiting and Vault takes about ${Math.round(expected)} ms per call: this one could not be answered within sign_timeout`);
      }
    }
    if (this.#pendingBytes + bytes > this.#options.maxPendingBytes) {
      return overloaded(`${Math.round(this.#pendingBytes / 1024)} KiB of signs are pending (batching.max_pending_bytes)`);
    }
    this.#pendingBytes += bytes;
    lane.queue.push({ input, deadline, bytes, settled: false, index, done });
    return undefined;
  }

  /** Settles a waiter once (its deadline timer and Vault's answer may race), releasing its bytes. */
  #settle(w: Waiting, signature: string | undefined, error: Error | undefined): void {
    if (w.settled) return;
    w.settled = true;
    this.#pendingBytes -= w.bytes;
    w.done(w.index, signature, error);
  }

  /** A lane removes only itself: a newer lane may have taken its id since. */
  #retire(lane: Lane): void {
    if (lane.queue.length > 0 || lane.inFlight > 0) return;
    if (lane.sweeper) {
      clearInterval(lane.sweeper);
      lane.sweeper = undefined;
    }
    lane.retired = true;
    if (this.#lanes.get(lane.id) === lane) this.#lanes.delete(lane.id);
  }

  #startSweeper(lane: Lane): void {
    const period = Math.max(10, Math.min(100, this.#options.maxWaitMs / 10));
    lane.sweeper = setInterval(() => {
      const now = performance.now();
      if (lane.queue.some((w) => w.deadline <= now)) {
        const expired = lane.queue.filter((w) => w.deadline <= now);
        lane.queue = lane.queue.filter((w) => w.deadline > now);
        const error = vaultTooSlow(lane.key.name);
        for (const w of expired) this.#settle(w, undefined, error);
      }
      if (lane.queue.length === 0) {
        clearInterval(lane.sweeper);
        lane.sweeper = undefined;
        this.#retire(lane);
      }
    }, period);
    lane.sweeper.unref();
  }

  /** Most items per Vault call for a key: bounded by count and by the Vault time the batch is expected to cost. */
  #callCap(key: LaneKey): number {
    return Math.max(1, Math.min(this.#options.maxBatchSize, Math.floor(this.#options.maxBatchCostMs / itemCostMs(key.keyType))));
  }

  /**
   * Items from which a key's batch is full: fullBatchSize for the cheap algs; for a costlier one, as many as carry
   * the same Vault work (fullBatchSize x CHEAP_ITEM_MS: 11 for P-384, 3 for RSA-2048, 1 for RSA-3072), within the
   * call cap. Such a batch is worth a Vault core of its own, so it leaves beside the others under the adaptive limit.
   * Counted in items alone, an RSA-2048 batch was full only at 16 (24 ms of Vault work): 4-16 clients signing one
   * token each never queued that many behind the one partial call, so their signs went out one call at a time, on
   * one of Vault's cores, and batching on signed half the tokens/s of batching off.
   */
  #fullSize(key: LaneKey): number {
    const byWork = Math.ceil((this.#options.fullBatchSize * CHEAP_ITEM_MS) / itemCostMs(key.keyType));
    return Math.max(1, Math.min(this.#options.fullBatchSize, byWork, this.#callCap(key)));
  }

  /**
   * Items each call a lane sends now takes: a full batch, while the backlog fits one round of full batches (the
   * limit's calls). Deeper, what would wait for a later round is merged into the calls that may leave now: an equal
   * share of the backlog each, up to the cap. So a backlog Vault's cores can take leaves as parallel full batches
   * (Signet turns each answer into tokens while Vault signs the others), and only a deeper one in fewer, larger calls.
   */
  #callSize(lane: Lane, fullSize: number): number {
    const limit = Math.max(this.#fullLimit(lane.key), this.#options.partialInFlight);
    if (lane.queue.length <= fullSize * limit) return fullSize;
    const calls = Math.max(1, limit - lane.inFlight);
    return Math.min(this.#callCap(lane.key), Math.ceil(lane.queue.length / calls));
  }

  /** The adaptive limit on a key's full batches at Vault (one per key: its versions share Vault's cores). */
  #limiter(key: LaneKey): InFlightLimit {
    let limiter = this.#fullLimits.get(key.name);
    if (!limiter) {
      // A costly alg's batch (RSA-3072 and up) is bounded to maxBatchCostMs of one Vault core: Vault is busy with
      // one call per core, and more calls would only queue there and outlive their callers' deadlines. Adapting is
      // for cheap batches, where Vault idles while Signet turns one call's answer into tokens. A costly alg's limit
      // stays at the floor: 2, or batching.min_in_flight when an operator asks for more.
      const floor = this.#options.minInFlight;
      const ceiling = this.#callCap(key) >= MIN_ADAPTIVE_BATCH ? this.#options.maxInFlight : Math.min(Math.max(DEFAULT_IN_FLIGHT_LIMIT.floor, floor), this.#options.maxInFlight);
      limiter = new InFlightLimit({ ...DEFAULT_IN_FLIGHT_LIMIT, floor, ceiling });
      this.#fullLimits.set(key.name, limiter);
    }
    return limiter;
  }

  /** Full batches a key may have at Vault at once now (batching off: the fixed bound). */
  #fullLimit(key: LaneKey): number {
    return this.#options.enabled ? this.#limiter(key).value : this.#options.maxInFlight;
  }

  /** Whether the lane may send another call now: a full batch while Vault has room, a partial one while none is out. */
  #maySend(lane: Lane, fullSize: number): boolean {
    if (lane.inFlight >= this.#options.maxInFlight) return false;
    if (lane.queue.length >= fullSize) return lane.inFlight < Math.max(this.#fullLimit(lane.key), this.#options.partialInFlight);
    return lane.partialInFlight < this.#options.partialInFlight;
  }

  #pump(lane: Lane): void {
    const fullSize = this.#fullSize(lane.key);
    const size = this.#callSize(lane, fullSize);
    while (lane.queue.length > 0 && this.#maySend(lane, fullSize)) {
      // Shed, before sending, the waiters whose remaining time cannot cover what this Vault call takes now: sending
      // them would only abort the call at their deadline, which reads as Vault's silence and opens the circuit.
      const now = performance.now();
      const expected = (this.#latencyMs.get(lane.key.name) ?? 0) * (size / fullSize);
      const batch: Waiting[] = [];
      while (batch.length < size && lane.queue.length > 0) {
        const w = lane.queue.shift()!;
        if (w.deadline - now < expected * SAFETY) {
          // After a failed call the wait was Vault's doing (the calls ahead hung until their deadline), not Signet's.
          this.#settle(w, undefined, lane.lastCallFailed ? vaultTooSlow(lane.key.name) : overloaded(`this sign waited ${Math.round(this.#options.maxWaitMs - (w.deadline - now))} ms in Signet's queue and Vault now takes about ${Math.round(expected)} ms, past sign_timeout`));
        } else {
          batch.push(w);
        }
      }
      if (batch.length === 0) break;
      const full = batch.length >= fullSize;
      if (!full && lane.partialInFlight >= this.#options.partialInFlight) {
        // Shedding left a partial batch and a partial call is already out: these wait for the next round.
        lane.queue.unshift(...batch);
        break;
      }
      this.#dispatch(lane, batch, full, now);
    }
    this.#retire(lane);
  }

  /** How many calls a lone batch of `items` leaves in: up to loneBatchCalls, each worth MIN_PIECE_MS of Vault work. */
  #piecesOf(key: LaneKey, items: number): number {
    const calls = Math.min(this.#options.loneBatchCalls, this.#options.maxInFlight);
    return Math.max(1, Math.min(calls, Math.floor((items * itemCostMs(key.keyType)) / MIN_PIECE_MS)));
  }

  /**
   * Sends one Vault call for `batch` and settles its waiters with the answer. `ended`: told when the call ends,
   * with the time of Vault's answer, or undefined when it failed.
   */
  #dispatch(lane: Lane, batch: Waiting[], full: boolean, now: number, ended?: (answeredAt: number | undefined) => void): void {
    lane.inFlight++;
    if (!full) lane.partialInFlight++;
    this.#observe(lane.key.name, batch.length);
    const deadline = batch.reduce((latest, w) => Math.max(latest, w.deadline), 0);
    const started = now;
    // Callers whose deadline comes before Vault answers get their 503 at that deadline; the call goes on.
    const timer = this.#armDeadlines(lane, batch);
    // Promise.try: a send that throws synchronously rejects its batch instead of leaving inFlight counted.
    Promise.try(this.#send, lane.key, batch.map((w) => w.input), deadline).then(
      (results) => {
        lane.lastCallFailed = false;
        const answeredAt = performance.now();
        // Vault signs a call's items one after another: a larger call's round trip, scaled to a full batch's items,
        // is what a full batch would have taken (the limit and the expected call time are per full batch).
        const fullSize = this.#fullSize(lane.key);
        const took = (answeredAt - started) * (fullSize / Math.max(batch.length, fullSize));
        const previous = this.#latencyMs.get(lane.key.name);
        this.#latencyMs.set(lane.key.name, previous === undefined ? took : previous * 0.8 + took * 0.2);
        if (full && this.#options.enabled) this.#limiter(lane.key).observe(started, took, answeredAt);
        ended?.(answeredAt);
        this.#finish(lane, batch, full, timer, () => batch.forEach((w, i) => {
          const result = results[i];
          // Every waiter settles, even if the answer is short: a missing item must not wait forever.
          if (!result) this.#settle(w, undefined, new VaultItemMissingError('Vault answered the batch without a result for this item'));
          else if ('signature' in result) this.#settle(w, result.signature, undefined);
          else this.#settle(w, undefined, itemError(result.error));
        }));
      },
      (error: Error) => {
        lane.lastCallFailed = true;
        ended?.(undefined);
        this.#finish(lane, batch, full, timer, () => batch.forEach((w) => this.#settle(w, undefined, error)));
      },
    );
  }

  /**
   * A call ended: its slot is freed and the next batch sent BEFORE its waiters are settled. Settling them runs the
   * whole answer path (tokens, response bodies, writes: milliseconds for a large batch), and the next call's
   * request reaches the socket only after that (undici writes on a reused connection from setImmediate): so when a
   * call left, the waiters settle in a later setImmediate, behind that write, and Vault signs the next batch while
   * Signet turns this one into tokens. With nothing sent they settle at once.
   */
  #finish(lane: Lane, batch: Waiting[], full: boolean, timer: { handle?: NodeJS.Timeout }, settle: () => void): void {
    clearTimeout(timer.handle);
    lane.inFlight--;
    if (!full) lane.partialInFlight--;
    const before = lane.inFlight;
    if (lane.queue.length > 0) this.#pump(lane);
    else this.#retire(lane);
    // Every waiter settles, whatever happens while settling (outside a promise chain a throw would end the process).
    const settleAll = () => {
      try {
        settle();
      } catch (error) {
        for (const w of batch) this.#settle(w, undefined, error instanceof Error ? error : new Error(String(error)));
      }
    };
    if (lane.inFlight > before) setImmediate(settleAll);
    else settleAll();
  }

  /** Answers each in-flight waiter at its own deadline with a 503, earliest first, without touching the call. */
  #armDeadlines(lane: Lane, batch: Waiting[]): { handle?: NodeJS.Timeout } {
    const timer: { handle?: NodeJS.Timeout } = {};
    const arm = () => {
      const open = batch.filter((w) => !w.settled);
      if (open.length === 0) return;
      const next = open.reduce((earliest, w) => Math.min(earliest, w.deadline), Infinity);
      timer.handle = setTimeout(() => {
        const now = performance.now();
        const error = new VaultUnavailableError('sign', `Vault did not answer a sign for key "${lane.key.name}" within sign_timeout`, 1, 'unreachable');
        for (const w of open) if (w.deadline <= now + 1) this.#settle(w, undefined, error);
        arm();
      }, Math.max(0, next - performance.now()));
      timer.handle.unref();
    };
    arm();
    return timer;
  }
}
