// Test harness: a real Signet app (buildApp + a loopback socket) against a TestVault, with its log lines
// captured so tests can assert on them (and on what they must never contain).

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { buildConfig, type Config } from '../../src/config.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { BatcherOptions } from '../../src/signer/batcher.ts';
import type { BreakerOptions } from '../../src/vault/breaker.ts';
import type { TestVault } from './vault.ts';

export interface TestSignet {
  app: FastifyInstance;
  url: string;
  config: Config;
  logs: string[];
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  get(path: string, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers; text: string }>;
  /** Waits until /readyz answers 200 (Vault reachable, token accepted, every key loaded). */
  ready(timeoutMs?: number): Promise<void>;
  /**
   * Waits for a log line matching `pattern` at index `from` or later of `logs` (one already there counts) and
   * returns it parsed, with its index. Wakes on the line's arrival, not on a poll; rejects after `timeoutMs`.
   */
  waitForLog(pattern: RegExp, timeoutMs?: number, from?: number): Promise<{ index: number; line: Record<string, any> }>;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Raw configuration document (as the YAML file would hold it), merged over the defaults below. */
  config?: Record<string, unknown>;
  env?: Record<string, string>;
  batcher?: Partial<BatcherOptions>;
  breaker?: BreakerOptions;
  healthIntervalMs?: number;
}

export async function startSignet(vault: TestVault, keys: Array<Record<string, unknown>>, options: StartOptions = {}): Promise<TestSignet> {
  const config = buildConfig({
    listen: '127.0.0.1:0',
    vault: { address: vault.address },
    keys: keys.map((k) => ({ issuer: 'https://issuer.test', ...k })),
    log_level: 'debug',
    ...options.config,
  }, { VAULT_TOKEN: vault.rootToken, ...options.env });
  const logs: string[] = [];
  const arrivals = new EventEmitter();
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      arrivals.emit('line');
      done();
    },
  });
  const app = await buildApp(config, {
    logger: createLogger(config.logLevel, sink), batcher: options.batcher, breaker: options.breaker, healthIntervalMs: options.healthIntervalMs,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  const url = `http://127.0.0.1:${port}`;
  return {
    app, url, config, logs,
    async post(path, body, headers = {}) {
      const response = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
    },
    async get(path, headers = {}) {
      const response = await fetch(`${url}${path}`, { headers });
      const text = await response.text();
      let parsed: unknown;
      try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
      return { status: response.status, body: parsed, headers: response.headers, text };
    },
    async ready(timeoutMs = 10_000) {
      await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, timeoutMs, `readiness of ${url}`);
    },
    waitForLog(pattern, timeoutMs = 15_000, from = 0) {
      return new Promise((resolve, reject) => {
        let next = from;
        const check = () => {
          for (; next < logs.length; next++) {
            if (pattern.test(logs[next]!)) {
              finish();
              resolve({ index: next, line: JSON.parse(logs[next]!) });
              return;
            }
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for a log line matching ${pattern}`));
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          arrivals.off('line', check);
        };
        arrivals.on('line', check);
        check();
      });
    },
    close: () => app.close(),
  };
}

/** Polls `check` every `intervalMs` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, what = 'condition', intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

export interface LagRecorder {
  /** Total time the event loop stood still beyond its ticks since the recorder started, ms. */
  totalMs(): number;
  /** How much of [from, to] (Date.now() ms) the event loop stood still. */
  within(from: number, to: number): number;
  stop(): void;
}

/**
 * Records when this process's event loop stood still: a 20 ms ticker notes each tick's lateness as a stall
 * interval. Signet runs in the test's process, so its timers and answers were held up by exactly these stalls (on
 * a loaded 2-core CI, other processes and the test's own clients cause them); a bound on Signet's timing can then
 * be checked on the time the loop actually ran, so load does not fail it and a slow implementation still does.
 */
export function recordLag(tickMs = 20): LagRecorder {
  const stalls: Array<[number, number]> = [];
  let last = Date.now();
  const tick = () => {
    const now = Date.now();
    const late = now - last - tickMs;
    if (late > 0) stalls.push([now - late, now]);
    last = now;
  };
  const ticker = setInterval(tick, tickMs);
  return {
    totalMs: () => stalls.reduce((sum, [a, b]) => sum + b - a, 0),
    within: (from, to) => stalls.reduce((sum, [a, b]) => sum + Math.max(0, Math.min(b, to) - Math.max(a, from)), 0),
    stop() {
      clearInterval(ticker);
      tick();
    },
  };
}

/**
 * Waits for what a change made in Vault must bring about, with the clock started now (call it once the Vault call
 * or CLI has returned: the change is made), and asserts it came within one refresh interval plus `marginMs` plus
 * the time this process's event loop was stalled meanwhile (a loaded CI delays Signet's refresh timer by that much;
 * a slower refresh schedule is not excused by it). Prints the figures.
 */
export async function withinOneRefresh<T>(what: string, refreshMs: number, marginMs: number, check: () => Promise<T | undefined | false>): Promise<T> {
  const since = Date.now();
  const lag = recordLag();
  let value: T;
  try {
    value = await eventually(check, 10_000, what, 20);
  } finally {
    lag.stop();
  }
  const took = Date.now() - since;
  const lagMs = lag.totalMs();
  const bound = refreshMs + marginMs + Math.round(lagMs);
  process.stderr.write(`${what}: ${took} ms after the change (bound ${bound} ms: refresh ${refreshMs} + margin ${marginMs} + event-loop lag ${Math.round(lagMs)})\n`);
  assert.ok(took <= bound, `${what} ${took} ms after the change (refresh_interval ${refreshMs} ms + ${marginMs} ms + event-loop lag ${Math.round(lagMs)} ms)`);
  return value;
}

/**
 * POSTs to a sign route as a well-behaved client does: a 503 from the event-loop guard ("Signet is overloaded
 * (eventLoopDelay)", with Retry-After; a loaded CI can trip it) is sent again after Retry-After, up to 20 times.
 * Every other answer, 503s for any other reason included, is returned as it came.
 */
export async function postSign(signet: TestSignet, path: string, body: unknown, headers?: Record<string, string>): ReturnType<TestSignet['post']> {
  for (let attempt = 0; ; attempt++) {
    const answer = await signet.post(path, body, headers);
    const overloaded = answer.status === 503 && /^Signet is overloaded \(eventLoopDelay\)/.test(answer.body?.errors?.[0] ?? '');
    if (!overloaded || attempt === 20) return answer;
    await new Promise((r) => setTimeout(r, Number(answer.headers.get('retry-after') ?? 1) * 1000));
  }
}
