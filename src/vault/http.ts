// The hot path to Vault: an undici Pool with keep-alive connections and short timeouts, used for sign, hmac,
// verify and the health probe. A circuit breaker makes a dead Vault cost callers microseconds instead of a
// timeout each. Each call's error is mapped to a Signet error here, so nothing above sees a raw client error.

import { readFileSync } from 'node:fs';
import { Pool, type Dispatcher } from 'undici';
import type { VaultConfig } from './config.ts';
import { VaultUnavailableError } from '../errors.ts';
import { CircuitBreaker, DEFAULT_BREAKER, type BreakerOptions, type CircuitState } from './breaker.ts';
import { fromTransportError, fromVaultStatus } from './errors.ts';

export interface TokenSource {
  /** The current Vault token. */
  current(): string;
  /** Called when Vault answered 403 to a call made with `token`: it may be revoked or expired. */
  rejected(token: string): void;
}

export interface VaultCallObserver {
  (operation: string, seconds: number, outcome: 'ok' | 'error' | 'unreachable'): void;
}

export interface VaultHttpOptions {
  connections?: number;
  observe?: VaultCallObserver;
  breaker?: BreakerOptions;
  onCircuit?: (state: CircuitState) => void;
}

/** What Vault's /sys/health says, by status code (with standbyok and perfstandbyok). */
export type VaultHealth = 'active' | 'standby' | 'dr_secondary' | 'sealed' | 'uninitialized' | 'unreachable';

/**
 * /sys/health's status codes (standbyok and perfstandbyok ask standbys for 200, but each code is mapped anyway):
 * 429 is an unsealed standby and 473 a performance standby, both of which serve or forward requests; 472 is a
 * disaster-recovery secondary, which serves no Transit request; 501 not initialised; 503 sealed.
 */
export function healthFromStatus(status: number): VaultHealth {
  switch (status) {
    case 200: return 'active';
    case 429: case 473: return 'standby';
    case 472: return 'dr_secondary';
    case 501: return 'uninitialized';
    default: return 'sealed';
  }
}

/** Vault's answer to one request: its status and body. */
interface Answer {
  statusCode: number;
  body: Buffer;
}

export class VaultHttp {
  readonly address: string;
  readonly breaker: CircuitBreaker;
  readonly #pool: Pool;
  readonly #namespace?: string;
  readonly #tokens: TokenSource;
  readonly #observe: VaultCallObserver;

  constructor(config: VaultConfig, tokens: TokenSource, options: VaultHttpOptions = {}) {
    this.address = config.address;
    this.#namespace = config.namespace;
    this.#tokens = tokens;
    this.#observe = options.observe ?? (() => {});
    this.breaker = new CircuitBreaker(options.breaker ?? DEFAULT_BREAKER, options.onCircuit);
    const timeoutMs = config.signTimeout * 1000;
    this.#pool = new Pool(config.address, {
      connections: options.connections ?? 16,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: Math.min(timeoutMs, 2000),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connect: {
        ca: config.caCert ? readFileSync(config.caCert) : undefined,
        cert: config.clientCert ? readFileSync(config.clientCert) : undefined,
        key: config.clientKey ? readFileSync(config.clientKey) : undefined,
        rejectUnauthorized: !config.skipVerify,
      },
    });
  }

  /**
   * POSTs a JSON body to /v1/<path> (an object, or its JSON already encoded as bytes) and returns Vault's `data`.
   * Fails fast while the circuit is open. `abandon`: a signal, or the ms after which the call is given up.
   */
  async post(operation: string, path: string, body: unknown, abandon?: AbortSignal | number): Promise<Record<string, unknown>> {
    const now = Date.now();
    if (!this.breaker.allow(now)) {
      throw new VaultUnavailableError(
        operation,
        `Vault at ${this.address} failed repeatedly; failing fast until it answers again`,
        Math.max(1, Math.ceil(this.breaker.retryAfterMs(now) / 1000)),
        'circuit_open',
      );
    }
    const token = this.#tokens.current();
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-vault-token': token };
    if (this.#namespace) headers['x-vault-namespace'] = this.#namespace;
    const started = performance.now();
    const done = (outcome: 'ok' | 'error' | 'unreachable') => {
      this.#observe(operation, (performance.now() - started) / 1000, outcome);
      if (outcome === 'unreachable') this.breaker.failure(Date.now());
      else this.breaker.success();
    };
    let answer: Answer;
    try {
      answer = await this.#send('POST', `/v1/${path}`, headers, body instanceof Uint8Array ? body : JSON.stringify(body), abandon);
    } catch (error) {
      done('unreachable');
      throw fromTransportError(operation, this.address, error);
    }
    const { statusCode } = answer;
    let json: { data?: Record<string, unknown>; errors?: string[] } | undefined;
    try {
      json = JSON.parse(answer.body.toString()) as typeof json;
    } catch (error) {
      done('unreachable');
      throw statusCode >= 500 || statusCode === 429 ? fromVaultStatus(operation, statusCode) : fromTransportError(operation, this.address, error);
    }
    if (statusCode !== 200) {
      // 5xx and 429: Vault is sealed, leaderless or overloaded, which counts against the circuit like silence.
      done(statusCode >= 500 || statusCode === 429 ? 'unreachable' : 'error');
      if (statusCode === 403) this.#tokens.rejected(token);
      throw fromVaultStatus(operation, statusCode, json?.errors ?? []);
    }
    done('ok');
    return json?.data ?? {};
  }

  /**
   * One request through the pool's dispatch API, its answer's bytes collected whole. undici's request() wraps every
   * answer in a Readable stream and an AsyncResource, which body.json() then reads through: on loopback, with an
   * answer of 32 signatures from a server in another process, the client's CPU per call fell from 144-175 to
   * 98-113 µs without them (process.cpuUsage, 3,000 calls a round). `abandon`: a signal, or ms after which the call
   * is aborted (a timer, cleared when the call ends: an AbortSignal.timeout() per call would keep a timer alive long
   * after each answer). Rejects with undici's error, or the abort's reason (a TimeoutError for the ms).
   */
  #send(method: 'GET' | 'POST', path: string, headers: Record<string, string>, body: string | Uint8Array | undefined,
    abandon?: AbortSignal | number): Promise<Answer> {
    const { promise, resolve, reject } = Promise.withResolvers<Answer>();
    const signal = typeof abandon === 'number' ? undefined : abandon;
    if (signal?.aborted) {
      reject(signal.reason);
      return promise;
    }
    let controller: Dispatcher.DispatchController | undefined;
    let abandoned: { reason: Error } | undefined;
    // The call may still wait for a connection: then the abort happens when it starts.
    const giveUp = (reason: Error) => {
      abandoned = { reason };
      controller?.abort(reason);
    };
    const onAbort = () => giveUp(signal!.reason as Error);
    let timer: NodeJS.Timeout | undefined;
    if (typeof abandon === 'number') {
      // The error is built when the timer fires: a DOMException captures a stack trace, which cost 5 % of Signet's
      // CPU at one client (two calls per batch) when it was built for every call.
      timer = setTimeout(() => giveUp(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), abandon);
      timer.unref();
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    const ended = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const chunks: Buffer[] = [];
    let statusCode = 0;
    this.#pool.dispatch({ method, path, headers, body }, {
      onRequestStart: (started) => {
        controller = started;
        if (abandoned) started.abort(abandoned.reason);
      },
      onResponseStart: (_controller, status) => {
        statusCode = status;
      },
      onResponseData: (_controller, chunk) => {
        chunks.push(chunk);
      },
      onResponseEnd: () => {
        ended();
        resolve({ statusCode, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
      },
      onResponseError: (_controller, error) => {
        ended();
        reject(error);
      },
    });
    return promise;
  }

  /** Vault's health, without a token. Never throws. */
  async health(timeoutMs: number): Promise<VaultHealth> {
    const started = performance.now();
    try {
      const { statusCode } = await this.#send('GET', '/v1/sys/health?standbyok=true&perfstandbyok=true',
        this.#namespace ? { 'x-vault-namespace': this.#namespace } : {}, undefined, timeoutMs);
      this.#observe('health', (performance.now() - started) / 1000, 'ok');
      return healthFromStatus(statusCode);
    } catch {
      this.#observe('health', (performance.now() - started) / 1000, 'unreachable');
      return 'unreachable';
    }
  }

  /** Called after the HTTP server has drained: what is still out (a probe, a refresh) is abandoned. */
  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}

/** Whether a failed call may be tried again: Vault did not answer or answered 5xx, but did not refuse. */
export function isRetryable(error: unknown): boolean {
  return error instanceof VaultUnavailableError && (error.reason === 'unreachable' || error.reason === 'unavailable');
}
