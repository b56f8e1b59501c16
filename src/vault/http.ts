// The hot path to Vault: an undici Pool with keep-alive connections and short timeouts, used for sign, hmac and
// verify. Each call's error is mapped to a Signet error here, so nothing above sees a raw client error.

import { readFileSync } from 'node:fs';
import { Pool } from 'undici';
import type { VaultConfig } from '../config.ts';
import { fromTransportError, fromVaultStatus } from './errors.ts';

export interface TokenSource {
  /** The current Vault token. */
  current(): string;
  /** Called when Vault answered 403: the token may be revoked or expired. */
  rejected(): void;
}

export interface VaultCallObserver {
  (operation: string, seconds: number, outcome: 'ok' | 'error' | 'unreachable'): void;
}

export class VaultHttp {
  readonly address: string;
  readonly #pool: Pool;
  readonly #namespace?: string;
  readonly #tokens: TokenSource;
  readonly #observe: VaultCallObserver;

  constructor(config: VaultConfig, tokens: TokenSource, options: { connections?: number; observe?: VaultCallObserver } = {}) {
    this.address = config.address;
    this.#namespace = config.namespace;
    this.#tokens = tokens;
    this.#observe = options.observe ?? (() => {});
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

  /** POSTs a JSON body to /v1/<path> and returns Vault's `data`. */
  async post(operation: string, path: string, body: unknown, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'x-vault-token': this.#tokens.current(),
    };
    if (this.#namespace) headers['x-vault-namespace'] = this.#namespace;
    const started = performance.now();
    let response;
    try {
      response = await this.#pool.request({ method: 'POST', path: `/v1/${path}`, headers, body: JSON.stringify(body), signal });
    } catch (error) {
      this.#observe(operation, (performance.now() - started) / 1000, 'unreachable');
      throw fromTransportError(operation, this.address, error);
    }
    let json: { data?: Record<string, unknown>; errors?: string[] } | undefined;
    try {
      json = (await response.body.json()) as typeof json;
    } catch (error) {
      if (response.statusCode >= 500 || response.statusCode === 429) {
        this.#observe(operation, (performance.now() - started) / 1000, 'unreachable');
        throw fromVaultStatus(operation, response.statusCode);
      }
      this.#observe(operation, (performance.now() - started) / 1000, 'unreachable');
      throw fromTransportError(operation, this.address, error);
    }
    const seconds = (performance.now() - started) / 1000;
    if (response.statusCode !== 200) {
      this.#observe(operation, seconds, response.statusCode >= 500 ? 'unreachable' : 'error');
      if (response.statusCode === 403) this.#tokens.rejected();
      throw fromVaultStatus(operation, response.statusCode, json?.errors ?? []);
    }
    this.#observe(operation, seconds, 'ok');
    return json?.data ?? {};
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}
