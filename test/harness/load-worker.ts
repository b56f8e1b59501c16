// Test harness for the soak test: signing clients (with bursts on demand) and a caching verifier in a worker thread,
// so that the load they generate (and the time they measure) runs on its own event loop, not on the one of the
// Signet under test (buildApp runs in the test's process). test/harness/load.ts's signLoad() is the in-process kind.
// startLoad() runs in the test; the worker half below runs when this module is loaded as a worker.

import assert from 'node:assert/strict';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';

export interface Outcome {
  /** Date.now() when the request was sent and when its answer was read. */
  start: number;
  end: number;
  /** 0: no HTTP answer (connection refused, reset). */
  status: number;
  retryAfter: string | null;
  error?: string;
  burst: boolean;
  /** The token of a 200. */
  token?: string;
}

export interface VerifierStats {
  fetches: number;
  verified: number;
  rejected: string[];
  /** Key versions whose first token named a kid the held JWKS lacked (it was fetched again at once). */
  unknownKidVersions: number[];
}

interface Options {
  url: string;
  key: string;
  issuer: string;
  alg: string;
  clients: number;
  /** Shortest gap between an unknown kid and the previous JWKS fetch for a refetch, ms. */
  refetchCooldownMs: number;
}

type ToWorker = { type: 'burst'; clients: number; ms: number } | { type: 'stop' };
type FromWorker =
  | { type: 'outcomes'; list: Outcome[] }
  | { type: 'burst_done' }
  | { type: 'done'; stats: VerifierStats; loopDelayMaxMs: number };

export interface Load {
  /** Every outcome so far (arrives in batches every 50 ms). */
  outcomes: Outcome[];
  /** `clients` more clients signing back to back for `ms`; resolves when every one of them has its last answer. */
  burst(clients: number, ms: number): Promise<void>;
  /** Stops the clients and returns the verifier's figures and the worker's worst event-loop delay. */
  stop(): Promise<{ stats: VerifierStats; loopDelayMaxMs: number }>;
}

export function startLoad(options: Options): Load {
  const worker = new Worker(new URL(import.meta.url), { workerData: options });
  const outcomes: Outcome[] = [];
  let burstDone: (() => void) | undefined;
  let done: ((result: { stats: VerifierStats; loopDelayMaxMs: number }) => void) | undefined;
  let failed: Error | undefined;
  worker.on('message', (message: FromWorker) => {
    if (message.type === 'outcomes') outcomes.push(...message.list);
    else if (message.type === 'burst_done') burstDone?.();
    else done?.({ stats: message.stats, loopDelayMaxMs: message.loopDelayMaxMs });
  });
  worker.on('error', (error) => {
    failed = error;
    burstDone?.();
  });
  const send = (message: ToWorker) => worker.postMessage(message);
  return {
    outcomes,
    async burst(clients, ms) {
      const finished = new Promise<void>((resolve) => {
        burstDone = resolve;
      });
      send({ type: 'burst', clients, ms });
      await finished;
      if (failed) throw failed;
    },
    async stop() {
      if (failed) throw failed;
      const result = new Promise<{ stats: VerifierStats; loopDelayMaxMs: number }>((resolve, reject) => {
        done = resolve;
        worker.once('error', reject);
      });
      send({ type: 'stop' });
      const value = await result;
      await worker.terminate();
      return value;
    },
  };
}

/**
 * A verifier as an application elsewhere runs one: it fetches the JWKS, keeps it for the Cache-Control max-age it
 * was served with, and verifies every token locally against the set it holds. On an unknown kid it fetches again at
 * once, as jose's createRemoteJWKSet does, unless it fetched less than `cooldownMs` ago (then the token fails).
 */
export class CachingVerifier {
  readonly #url: string;
  readonly #issuer: string;
  readonly #alg: string;
  readonly #cooldownMs: number;
  #keys: ReturnType<typeof createLocalJWKSet> | undefined;
  #kids = new Set<string>();
  #expiresAt = 0;
  #fetchedAt = 0;
  #fetching: Promise<void> | undefined;
  readonly stats: VerifierStats = { fetches: 0, verified: 0, rejected: [], unknownKidVersions: [] };

  constructor(url: string, issuer: string, alg: string, cooldownMs: number) {
    this.#url = url;
    this.#issuer = issuer;
    this.#alg = alg;
    this.#cooldownMs = cooldownMs;
  }

  #fetch(): Promise<void> {
    this.#fetching ??= (async () => {
      const response = await fetch(`${this.#url}/.well-known/jwks.json`);
      assert.equal(response.status, 200, 'the JWKS answers throughout');
      const maxAge = Number(/max-age=(\d+)/.exec(response.headers.get('cache-control') ?? '')?.[1]);
      assert.ok(Number.isFinite(maxAge), 'the JWKS has a Cache-Control max-age');
      const jwks = (await response.json()) as JSONWebKeySet;
      this.#keys = createLocalJWKSet(jwks);
      this.#kids = new Set(jwks.keys.map((k) => k.kid!));
      this.#fetchedAt = Date.now();
      this.#expiresAt = this.#fetchedAt + maxAge * 1000;
      this.stats.fetches++;
    })().finally(() => {
      this.#fetching = undefined;
    });
    return this.#fetching;
  }

  async verify(token: string, version: number): Promise<void> {
    if (!this.#keys || Date.now() >= this.#expiresAt) await this.#fetch();
    const kid = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid as string;
    if (!this.#kids.has(kid) && Date.now() - this.#fetchedAt >= this.#cooldownMs) {
      if (!this.stats.unknownKidVersions.includes(version)) this.stats.unknownKidVersions.push(version);
      await this.#fetch();
    }
    try {
      await jwtVerify(token, this.#keys!, { algorithms: [this.#alg], issuer: this.#issuer });
      this.stats.verified++;
    } catch (error) {
      this.stats.rejected.push(`v${version} kid ${kid}: ${(error as Error).message}`);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runWorker(options: Options): Promise<void> {
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const port = parentPort!;
  const verifier = new CachingVerifier(options.url, options.issuer, options.alg, options.refetchCooldownMs);
  let pending: Outcome[] = [];
  const flush = setInterval(() => {
    if (pending.length === 0) return;
    port.postMessage({ type: 'outcomes', list: pending } satisfies FromWorker);
    pending = [];
  }, 50);

  // One sign; a 200's token is verified at once. Jitter uses Math.random: it shapes load, not the fault sequence.
  async function signOnce(i: number, burst: boolean): Promise<void> {
    const start = Date.now();
    let outcome: Outcome;
    try {
      const response = await fetch(`${options.url}/v1/sign/${options.key}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ claims: { sub: `client-${i}` } }),
      });
      const body = await response.json() as { token?: string; key_version?: number; errors?: string[] };
      outcome = { start, end: Date.now(), status: response.status, retryAfter: response.headers.get('retry-after'), error: body.errors?.[0], burst };
      if (response.status === 200) {
        outcome.token = body.token!;
        pending.push(outcome);
        await verifier.verify(body.token!, body.key_version!);
        return;
      }
    } catch (error) {
      outcome = { start, end: Date.now(), status: 0, retryAfter: null, error: (error as Error).message, burst };
    }
    pending.push(outcome);
    // After a failure a test client comes back within 50-100 ms (not after Retry-After), so that recovery is
    // measured to the tenth of a second.
    await sleep(50 + Math.random() * 50);
  }

  let running = true;
  const clients = Array.from({ length: options.clients }, async (_, i) => {
    while (running) {
      await signOnce(i, false);
      await sleep(5 + Math.random() * 10);
    }
  });

  port.on('message', (message: ToWorker) => {
    if (message.type === 'burst') {
      let bursting = true;
      setTimeout(() => {
        bursting = false;
      }, message.ms);
      void Promise.all(Array.from({ length: message.clients }, async (_, i) => {
        while (bursting) await signOnce(options.clients + i, true);
      })).then(() => port.postMessage({ type: 'burst_done' } satisfies FromWorker));
    } else {
      running = false;
      void Promise.all(clients).then(() => {
        clearInterval(flush);
        port.postMessage({ type: 'outcomes', list: pending } satisfies FromWorker);
        port.postMessage({ type: 'done', stats: verifier.stats, loopDelayMaxMs: Math.round(loop.max / 1e6) } satisfies FromWorker);
      });
    }
  });
}

if (!isMainThread && (workerData as Options | undefined)?.url) void runWorker(workerData as Options);
