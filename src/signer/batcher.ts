// Opportunistic batching of concurrent signs (DESIGN §9). Per (key, version) lane: when fewer than
// `maxInFlight` Vault calls are out, a request goes out at once (no added latency at low load); otherwise it
// waits, and everything waiting leaves together as one batch_input call when a call returns. A batch is bounded
// by item count and by the Vault time it is expected to cost (Vault signs the items of one batch one after
// another), and the queue is bounded: past it, a request is refused at once instead of growing memory.

import { SignetError, VaultUnavailableError } from '../errors.ts';
import type { AlgSpec } from '../jwt/algorithms.ts';
import type { ItemResult } from '../vault/transit.ts';

export interface BatcherOptions {
  enabled: boolean;
  /** Vault calls in flight per lane. */
  maxInFlight: number;
  /** Items per batch call. */
  maxBatchSize: number;
  /** Expected Vault time per batch, ms. */
  maxBatchCostMs: number;
  /** Requests waiting per lane before new ones are refused. */
  maxQueue: number;
  /** Longest a request waits for its Vault call to start, ms (the caller's deadline: sign_timeout). */
  maxWaitMs: number;
}

export const DEFAULT_BATCHER: BatcherOptions = {
  enabled: true,
  maxInFlight: 2,
  maxBatchSize: 64,
  maxBatchCostMs: 25,
  maxQueue: 2048,
  maxWaitMs: 2000,
};

/** Approximate Vault CPU time of one signature, ms (measured on Vault's Go crypto). */
export function itemCostMs(keyType: string): number {
  switch (keyType) {
    case 'rsa-2048': return 1.5;
    case 'rsa-3072': return 4.5;
    case 'rsa-4096': return 10;
    case 'ecdsa-p384': return 0.3;
    case 'ecdsa-p521': return 0.6;
    default: return 0.05;
  }
}

/**
 * The error of one refused batch item. An operator who raises min_encryption_version makes Vault refuse the
 * version Signet chose a moment earlier: that gets its own code, so the signer can re-read the key and sign again.
 */
export function itemError(message: string): SignetError {
  if (/less than the minimum encryption key version/.test(message)) {
    return new SignetError(503, 'version_below_minimum', `Vault refused the key version: ${message.slice(0, 200)}`);
  }
  return new SignetError(502, 'vault_item', `Vault refused to sign: ${message.slice(0, 200)}`);
}

/**
 * Sends one batch. `deadline` (a performance.now() time) is the earliest caller deadline in the batch: the Vault
 * call must answer by then, so no caller waits longer than its sign_timeout, queueing included.
 */
export type SendBatch = (lane: LaneKey, inputs: string[], deadline: number) => Promise<ItemResult[]>;

export interface LaneKey {
  name: string;
  version: number;
  keyType: string;
  spec: AlgSpec;
}

interface Waiting {
  input: string;
  /** performance.now() after which the request gives up waiting. */
  deadline: number;
  resolve: (signature: string) => void;
  reject: (error: Error) => void;
}

interface Lane {
  key: LaneKey;
  queue: Waiting[];
  inFlight: number;
  /** Rejects waiters past their deadline while the queue is not empty (a hung Vault must not hold them). */
  sweeper?: NodeJS.Timeout;
}

export interface BatchObserver {
  (key: string, size: number): void;
}

export class SignBatcher {
  readonly #options: BatcherOptions;
  readonly #send: SendBatch;
  readonly #observe: BatchObserver;
  readonly #lanes = new Map<string, Lane>();

  constructor(options: BatcherOptions, send: SendBatch, observe: BatchObserver = () => {}) {
    this.#options = options.enabled ? options : { ...options, maxBatchSize: 1, maxInFlight: Math.max(options.maxInFlight, 64) };
    this.#send = send;
    this.#observe = observe;
  }

  /** Requests waiting (not yet sent) across all lanes of a key. */
  queued(name: string): number {
    let total = 0;
    for (const lane of this.#lanes.values()) if (lane.key.name === name) total += lane.queue.length;
    return total;
  }

  /** Signs one input (standard base64); resolves with Vault's `vault:vN:...` signature. */
  sign(key: LaneKey, input: string): Promise<string> {
    const id = `${key.name}\0${key.version}`;
    let lane = this.#lanes.get(id);
    if (!lane) {
      lane = { key, queue: [], inFlight: 0 };
      this.#lanes.set(id, lane);
    }
    if (lane.queue.length >= this.#options.maxQueue) {
      return Promise.reject(new VaultUnavailableError('sign', `sign queue for key "${key.name}" is full (${this.#options.maxQueue} waiting); retry shortly`, 1, 'overloaded'));
    }
    const { promise, resolve, reject } = Promise.withResolvers<string>();
    lane.queue.push({ input, resolve, reject, deadline: performance.now() + this.#options.maxWaitMs });
    this.#pump(id, lane);
    if (lane.queue.length > 0 && !lane.sweeper) this.#startSweeper(id, lane);
    return promise;
  }

  #startSweeper(id: string, lane: Lane): void {
    const period = Math.max(10, Math.min(100, this.#options.maxWaitMs / 10));
    lane.sweeper = setInterval(() => {
      const now = performance.now();
      const expired = lane.queue.filter((w) => w.deadline <= now);
      if (expired.length > 0) {
        lane.queue = lane.queue.filter((w) => w.deadline > now);
        const error = new VaultUnavailableError('sign', `no Vault call for key "${lane.key.name}" could start within sign_timeout; Vault is slow or away`, 1, 'unreachable');
        for (const w of expired) w.reject(error);
      }
      if (lane.queue.length === 0) {
        clearInterval(lane.sweeper);
        lane.sweeper = undefined;
        if (lane.inFlight === 0) this.#lanes.delete(id);
      }
    }, period);
    lane.sweeper.unref();
  }

  #pump(id: string, lane: Lane): void {
    const limit = Math.max(1, Math.min(this.#options.maxBatchSize, Math.floor(this.#options.maxBatchCostMs / itemCostMs(lane.key.keyType))));
    while (lane.inFlight < this.#options.maxInFlight && lane.queue.length > 0) {
      const batch = lane.queue.splice(0, limit);
      lane.inFlight++;
      this.#observe(lane.key.name, batch.length);
      // Promise.try: a send that throws synchronously rejects its batch instead of leaving inFlight counted.
      const deadline = batch.reduce((earliest, w) => Math.min(earliest, w.deadline), Infinity);
      Promise.try(this.#send, lane.key, batch.map((w) => w.input), deadline).then(
        (results) => batch.forEach((w, i) => {
          const result = results[i];
          // Every waiter settles, even if the answer is short: a missing item must not wait forever.
          if (!result) w.reject(new SignetError(502, 'vault_item', 'Vault answered the batch without a result for this item'));
          else if ('signature' in result) w.resolve(result.signature);
          else w.reject(itemError(result.error));
        }),
        (error: Error) => batch.forEach((w) => w.reject(error)),
      ).finally(() => {
        lane.inFlight--;
        if (lane.queue.length > 0) this.#pump(id, lane);
        else if (lane.inFlight === 0) this.#lanes.delete(id);
      });
    }
  }
}
