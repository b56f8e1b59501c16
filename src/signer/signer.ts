// Sign: claims policy → JWS signing input → Vault (through the batcher) → compact JWT. Signing always names
// the schedule's active version explicitly, and the signature's vault:vN: prefix must match it.

import { randomBytes } from 'node:crypto';
import { ClaimPolicyError, InvalidRequestError, SignetError, UnknownKeyError, VaultUnavailableError, VersionBelowMinimumError } from '../errors.ts';
import { parseDuration } from '../duration.ts';
import { DEFAULT_CLAIM_LIMITS, issueClaims, type ClaimLimits, type ClaimsPolicy } from '../jwt/claims.ts';
import type { KeyConfig } from '../keys/config.ts';
import { encodeHeader, encodePayload } from '../jwt/jws.ts';
import { jwsSignatureFromVault, transitSignInput } from '../vault/wire.ts';
import type { Keyring, KeyView, VersionView } from '../keys/keyring.ts';
import type { SignBatcher } from './batcher.ts';
import { lowS } from '../jwt/signature.ts';

export interface SignRequest {
  claims: Record<string, unknown>;
  ttl?: string | number;
  headers?: { typ?: string };
}

/** A signature over a payload someone else encoded (signPayload). */
export interface PayloadSignature {
  /** base64url of the header {alg, kid, typ}. */
  header: string;
  /** base64url of the signature over `header.payload`. */
  signature: string;
  alg: KeyView['alg'];
  /** The version that signed (its kid and public key). */
  version: VersionView;
}

export interface SignResult {
  /** The payload as signed: for the audit record. Not part of the HTTP answer (its response schemas omit it). */
  claims: Readonly<Record<string, unknown>>;
  token: string;
  kid: string;
  alg: string;
  key: string;
  key_version: number;
  expires_at: number;
}

// 128 random bits per jti, drawn from a pooled buffer: one randomBytes call per 256 tokens instead of one each
// (it was 6-7 % of Signet's CPU at 64 clients, measured with --cpu-prof).
const JTI_BYTES = 16;
let pool = Buffer.alloc(0);
let offset = 0;
function newJti(): string {
  if (offset + JTI_BYTES > pool.length) {
    pool = randomBytes(JTI_BYTES * 256);
    offset = 0;
  }
  const jti = pool.toString('base64url', offset, offset + JTI_BYTES);
  offset += JTI_BYTES;
  return jti;
}

/** A key's claims policy and the `typ` values it signs. */
type KeyPolicy = ClaimsPolicy & { allowedTyp: readonly string[] };

export class Signer {
  readonly #keyring: Keyring;
  readonly #batcher: SignBatcher;
  readonly #headers = new Map<string, string>();
  readonly #refreshKeys: () => Promise<void>;
  /** The claims policy of each configured key, built once (not per request). */
  readonly #policies: ReadonlyMap<string, KeyPolicy>;

  /** `refreshKeys` re-reads key state from Vault (shared with the periodic refresh). */
  constructor(
    keys: readonly KeyConfig[], keyring: Keyring, batcher: SignBatcher, refreshKeys: () => Promise<void>,
    limits: ClaimLimits = DEFAULT_CLAIM_LIMITS,
  ) {
    this.#keyring = keyring;
    this.#batcher = batcher;
    this.#refreshKeys = refreshKeys;
    this.#policies = new Map(keys.map((k) => [k.name, {
      issuer: k.issuer,
      audiences: k.audiences,
      audiencePattern: k.audiencePattern,
      subjectPattern: k.subjectPattern,
      requireAudience: k.requireAudience,
      defaultTtl: k.defaultTtl,
      maxTtl: k.maxTtl,
      callerMaySet: new Set(k.callerClaims),
      limits,
      allowedTyp: k.allowedTyp,
    }]));
  }

  /**
   * Signs with the key's active version. If Vault refuses that version because an operator has just raised
   * min_encryption_version (the immediate switch), the key state is re-read and the token signed again, once,
   * with the new version and its kid.
   */
  async sign(name: string, request: SignRequest): Promise<SignResult> {
    const policy = this.#policies.get(name);
    if (!policy) throw new UnknownKeyError(name);
    // One deadline for both attempts: the caller's sign_timeout counts from now (see SignBatcher.sign's `since`).
    const since = performance.now();
    return this.#withMinimumRetry(() => this.#signOnce(name, policy, request, since));
  }

  /**
   * Signs a payload built elsewhere (kube-apiserver's claims: base64url JSON, passed through as they are) with the
   * key's active version: no claims policy, no claim added or removed, header exactly {alg, kid, typ: "JWT"}. Same
   * version choice, batcher and min_encryption_version retry as sign(). The caller validates the payload.
   */
  async signPayload(name: string, payload: string): Promise<PayloadSignature> {
    if (!this.#policies.has(name)) throw new UnknownKeyError(name);
    const since = performance.now();
    return this.#withMinimumRetry(async () => {
      const view = this.#view(name, Date.now());
      const { header, signature } = await this.#signWith(name, view, 'JWT', payload, since);
      return { header, signature, alg: view.alg, version: view.signing };
    });
  }

  /**
   * Signs every item of a caller's batch with ONE key version, picked once for the whole request: items are
   * checked and signed independently (an item refused by the claims policy gets its own error, the others are
   * signed), and all of them go to the batcher under the same (key, version) lane. If Vault refuses that version
   * (min_encryption_version just raised), the key state is re-read and the whole batch signed again with the new
   * version, so the answer never mixes versions.
   */
  async signBatch(name: string, requests: readonly SignRequest[]): Promise<Array<SignResult | SignetError>> {
    const policy = this.#policies.get(name);
    if (!policy) throw new UnknownKeyError(name);
    const since = performance.now();
    const results = await this.#signBatchOnce(name, policy, requests, since);
    if (!results.some((r) => r instanceof VersionBelowMinimumError)) return results;
    await this.#refreshKeys();
    return await this.#signBatchOnce(name, policy, requests, since);
  }

  async #signBatchOnce(name: string, policy: KeyPolicy, requests: readonly SignRequest[], since: number): Promise<Array<SignResult | SignetError>> {
    const nowMs = Date.now();
    const view = this.#view(name, nowMs);
    // Every item reaches the batcher synchronously, so together() sees the whole batch (and may send its first
    // pieces while the rest are encoded).
    return await Promise.all(this.#batcher.together(requests.length, () => requests.map(async (request) => {
      try {
        return await this.#signClaims(name, view, policy, request, nowMs, since);
      } catch (error) {
        if (error instanceof SignetError) return error;
        throw error;
      }
    })));
  }

  async #withMinimumRetry<T>(once: () => Promise<T>): Promise<T> {
    try {
      return await once();
    } catch (error) {
      if (!(error instanceof VersionBelowMinimumError)) throw error;
      await this.#refreshKeys();
      return await once();
    }
  }

  #view(name: string, nowMs: number): KeyView {
    const view = this.#keyring.view(name, nowMs / 1000);
    if (!view) {
      throw new VaultUnavailableError('sign', `key "${name}" is not loaded from Vault yet; see /readyz and the logs`, 2, 'not_loaded');
    }
    return view;
  }

  /** Header (cached per kid, alg, typ) + Vault signature of `header.payload` with the view's signing version. */
  async #signWith(name: string, view: KeyView, typ: string, payload: string, since: number): Promise<{ header: string; signature: string }> {
    const { signing, alg } = view;
    const headerId = `${signing.kid}\0${alg}\0${typ}`;
    let header = this.#headers.get(headerId);
    if (header === undefined) {
      header = encodeHeader(alg, signing.kid, typ);
      if (this.#headers.size > 1024) this.#headers.clear();
      this.#headers.set(headerId, header);
    }
    const signingInput = `${header}.${payload}`;
    // The pending sign holds its signing input (and the claims behind it) even when Vault gets only its digest.
    const vaultSignature = await this.#batcher.sign(
      { name, version: signing.version, keyType: view.type, spec: view.spec },
      transitSignInput(signingInput, view.spec),
      signingInput.length,
      since,
    );
    let signature = jwsSignatureFromVault(vaultSignature, signing.version);
    // One spelling per token: ECDSA signatures go out in their low-S form (/v1/verify refuses the other). About
    // half are low-S already and keep Vault's string.
    if (view.spec.lowS) {
      const bytes = Buffer.from(signature, 'base64url');
      const low = lowS(alg, bytes);
      if (low !== bytes) signature = low.toString('base64url');
    }
    return { header, signature };
  }

  async #signOnce(name: string, policy: KeyPolicy, request: SignRequest, since: number): Promise<SignResult> {
    const nowMs = Date.now();
    return await this.#signClaims(name, this.#view(name, nowMs), policy, request, nowMs, since);
  }

  /** One token of a claims request, signed with `view`'s signing version. */
  async #signClaims(name: string, view: KeyView, policy: KeyPolicy, request: SignRequest, nowMs: number, since: number): Promise<SignResult> {
    const now = Math.floor(nowMs / 1000);
    let ttl: number | undefined;
    if (request.ttl !== undefined) {
      ttl = parseDuration(request.ttl);
      if (ttl === undefined) throw new InvalidRequestError('ttl: must be a duration such as "15m" or a number of seconds');
    }
    const issued = issueClaims({ claims: request.claims, ttl }, policy, now, newJti);
    const typ = request.headers?.typ ?? policy.allowedTyp[0]!;
    if (!policy.allowedTyp.includes(typ)) {
      throw new ClaimPolicyError(`header typ: not one of this key's allowed_typ (${policy.allowedTyp.join(', ')})`);
    }
    const payload = encodePayload(issued.claims);
    const { header, signature } = await this.#signWith(name, view, typ, payload, since);
    return {
      token: `${header}.${payload}.${signature}`,
      kid: view.signing.kid,
      alg: view.alg,
      key: name,
      key_version: view.signing.version,
      expires_at: issued.exp,
      claims: issued.claims,
    };
  }
}
