// Transit operations on the hot path: sign (or HMAC) a batch of inputs with one explicit key version, and
// verify an HMAC. Always batch_input (one item at low load) so one code path parses every answer; a batch
// answers HTTP 200 even when items fail, so each item's `error` is kept with its own item.

import { VaultResponseError } from '../errors.ts';
import type { AlgSpec } from '../jwt/algorithms.ts';
import type { VaultHttp } from './http.ts';

export type ItemResult = { signature: string } | { error: string };

export class Transit {
  readonly #http: VaultHttp;
  readonly #mount: string;

  constructor(http: VaultHttp, mount: string) {
    this.#http = http;
    this.#mount = mount;
  }

  /**
   * Signs each input (standard base64; a digest where spec.prehash, see transitSignInput) with `version`; returns
   * Vault's `vault:vN:...` per item, in order.
   */
  async signBatch(name: string, version: number, spec: AlgSpec, inputs: readonly string[], abandon?: AbortSignal | number): Promise<ItemResult[]> {
    const op = spec.operation;
    const path = `${this.#mount}/${op}/${encodeURIComponent(name)}${spec.hash ? `/${spec.hash}` : ''}`;
    const body = {
      ...spec.signParams, ...(spec.prehash && { prehashed: true }), key_version: version, batch_input: inputs.map((input) => ({ input })),
    };
    const data = await this.#http.post(op, path, body, abandon);
    const results = data.batch_results;
    if (!Array.isArray(results) || results.length !== inputs.length) {
      throw new VaultResponseError(`Vault answered a ${op} batch of ${inputs.length} with ${Array.isArray(results) ? results.length : 'no'} results`);
    }
    return results.map((item: Record<string, unknown>) => {
      if (typeof item.error === 'string' && item.error) return { error: item.error };
      const signature = op === 'hmac' ? item.hmac : item.signature;
      if (typeof signature !== 'string') return { error: `Vault returned no ${op === 'hmac' ? 'hmac' : 'signature'}` };
      return { signature };
    });
  }

  /** Checks an HMAC (`vault:vN:<base64>`) through Vault: the key never leaves it, so neither does the check. */
  async verifyHmac(name: string, spec: AlgSpec, input: string, hmac: string, signal?: AbortSignal): Promise<boolean> {
    const path = `${this.#mount}/verify/${encodeURIComponent(name)}/${spec.hash}`;
    const data = await this.#http.post('verify', path, { input, hmac }, signal);
    return data.valid === true;
  }
}
