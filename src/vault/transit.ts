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
   * Signs each input (standard base64, as transitSignInput makes it: a digest where spec.prehash) with `version`;
   * returns Vault's `vault:vN:...` per item, in order. The inputs are put in the body as they are (see below): a
   * string that is not base64 would have to be escaped first.
   */
  async signBatch(name: string, version: number, spec: AlgSpec, inputs: readonly string[], abandon?: AbortSignal | number): Promise<ItemResult[]> {
    const op = spec.operation;
    const path = `${this.#mount}/${op}/${encodeURIComponent(name)}${spec.hash ? `/${spec.hash}` : ''}`;
    const params = JSON.stringify({ ...spec.signParams, ...(spec.prehash && { prehashed: true }), key_version: version });
    // The body is written around the inputs, not through an object per item: they are standard base64, which JSON
    // carries as it is, so the text is ASCII and its bytes are its latin1 encoding (a copy, no UTF-8 scan).
    const items = inputs.length === 0 ? '' : `{"input":"${inputs.join('"},{"input":"')}"}`;
    const body = Buffer.from(`${params.slice(0, -1)},"batch_input":[${items}]}`, 'latin1');
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
