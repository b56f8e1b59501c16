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
import type { LaneKey, SignBatcher, SignSettled } from './batcher.ts';
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

// Random jti values, 22 base64url characters (132 random bits) each, sliced from one pooled string: one randomBytes
// and one encoding per 256 tokens instead of an encoding per token (the jti was 2 % of Signet's CPU answering
// callers' batches, measured with --cpu-prof; one randomBytes call each was 6-7 % at 64 clients before the pool).
const JTI_LENGTH = 22;
const JTIS_PER_POOL = 256;
let jtiPool = '';
let jtiOffset = 0;
function newJti(): string {
  if (jtiOffset + JTI_LENGTH > jtiPool.length) {
    // 33 bytes are 44 base64url characters without padding: every character of the pool carries 6 random bits.
    jtiPool = randomBytes((JTI_LENGTH * JTIS_PER_POOL * 3) / 4).toString('base64url');
    jtiOffset = 0;
  }
  const jti = jtiPool.slice(jtiOffset, jtiOffset + JTI_LENGTH);
  jtiOffset += JTI_LENGTH;
  return jti;
}

/** A key's claims policy and the `typ` values it signs. */
type KeyPolicy = ClaimsPolicy & { allowedTyp: readonly string[] };

/** A token's parts before Vault's signature: what the batcher's answer is turned into a token with. */
interface Unsigned {
  signingInput: string;
  exp: number;
  claims: Record<string, unknown>;
}

/** What a request (one token, or a caller's whole batch) signs with: picked once, before any item is encoded. */
interface Signing {
  name: string;
  view: KeyView;
  policy: KeyPolicy;
  /** The batcher's lane: one object for every item, so the batcher finds the lane once. */
  lane: LaneKey;
  /** The header of this key's default typ (allowed_typ[0]), the one most tokens carry. */
  header: string;
  /** Seconds since the epoch: one clock reading for every item. */
  now: number;
  /** performance.now() when the caller's wait began (see SignBatcher.sign). */
  since: number;
}

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
    const policy = this.#policy(name);
    // One deadline for both attempts: the caller's sign_timeout counts from now (see SignBatcher.sign's `since`).
    const since = performance.now();
    return this.#withMinimumRetry(async () => {
      const signing = this.#signing(name, policy, since);
      const unsigned = this.#prepare(signing, request);
      return this.#token(signing, unsigned, await this.#vaultSign(signing, unsigned.signingInput));
    });
  }

  /**
   * Signs a payload built elsewhere (kube-apiserver's claims: base64url JSON, passed through as they are) with the
   * key's active version: no claims policy, no claim added or removed, header exactly {alg, kid, typ: "JWT"}. Same
   * version choice, batcher and min_encryption_version retry as sign(). The caller validates the payload.
   */
  async signPayload(name: string, payload: string): Promise<PayloadSignature> {
    const policy = this.#policy(name);
    const since = performance.now();
    return this.#withMinimumRetry(async () => {
      const signing = this.#signing(name, policy, since);
      const header = this.#header(signing.view, 'JWT');
      const signature = this.#signature(signing, await this.#vaultSign(signing, `${header}.${payload}`));
      return { header, signature, alg: signing.view.alg, version: signing.view.signing };
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
    const policy = this.#policy(name);
    const since = performance.now();
    const results = await this.#signBatchOnce(this.#signing(name, policy, since), requests);
    if (!results.some((r) => r instanceof VersionBelowMinimumError)) return results;
    await this.#refreshKeys();
    return await this.#signBatchOnce(this.#signing(name, policy, since), requests);
  }

  /**
   * One attempt at a batch: every item is encoded and handed to the batcher in order, inside together() (which sees
   * the whole batch, and lets a spread batch's first pieces leave while the rest are encoded), with one callback for
   * all of them and one promise for the request, not a promise chain per item. An error that is not a SignetError
   * (a bug) fails the request, as it would fail a single sign.
   */
  #signBatchOnce(signing: Signing, requests: readonly SignRequest[]): Promise<Array<SignResult | SignetError>> {
    const count = requests.length;
    const results = new Array<SignResult | SignetError>(count);
    const unsigned = new Array<Unsigned | undefined>(count);
    const { promise, resolve, reject } = Promise.withResolvers<Array<SignResult | SignetError>>();
    // One more than the items until together() has started them all: an item signed or refused before then cannot
    // resolve the request early.
    let pending = count + 1;
    let failed = false;
    const fail = (error: unknown) => {
      failed = true;
      reject(error);
    };
    const settled: SignSettled = (index, vaultSignature, error) => {
      if (failed) return;
      if (error !== undefined) {
        if (!(error instanceof SignetError)) return fail(error);
        results[index] = error;
      } else {
        try {
          results[index] = this.#token(signing, unsigned[index]!, vaultSignature!);
        } catch (tokenError) {
          if (!(tokenError instanceof SignetError)) return fail(tokenError);
          results[index] = tokenError;
        }
      }
      unsigned[index] = undefined;
      if (--pending === 0) resolve(results);
    };
    const start = (index: number) => {
      let item: Unsigned;
      try {
        item = this.#prepare(signing, requests[index]!);
      } catch (error) {
        if (!(error instanceof SignetError)) throw error;
        results[index] = error;
        pending--;
        return;
      }
      unsigned[index] = item;
      this.#submit(signing, item.signingInput, index, settled);
    };
    this.#batcher.together(count, start, (error) => {
      if (error !== undefined) fail(error);
      else if (--pending === 0 && !failed) resolve(results);
    });
    return promise;
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

  #policy(name: string): KeyPolicy {
    const policy = this.#policies.get(name);
    if (!policy) throw new UnknownKeyError(name);
    return policy;
  }

  /** The key's signing version now (the key state may have moved since the last attempt), for one request. */
  #signing(name: string, policy: KeyPolicy, since: number): Signing {
    const nowMs = Date.now();
    const view = this.#keyring.view(name, nowMs / 1000);
    if (!view) {
      throw new VaultUnavailableError('sign', `key "${name}" is not loaded from Vault yet; see /readyz and the logs`, 2, 'not_loaded');
    }
    return {
      name, view, policy, since,
      lane: { name, version: view.signing.version, keyType: view.type, spec: view.spec },
      header: this.#header(view, policy.allowedTyp[0]!),
      now: Math.floor(nowMs / 1000),
    };
  }

  /** The protected header for the view's signing version and `typ`, cached per (kid, alg, typ). */
  #header(view: KeyView, typ: string): string {
    const headerId = `${view.signing.kid}\0${view.alg}\0${typ}`;
    let header = this.#headers.get(headerId);
    if (header === undefined) {
      header = encodeHeader(view.alg, view.signing.kid, typ);
      if (this.#headers.size > 1024) this.#headers.clear();
      this.#headers.set(headerId, header);
    }
    return header;
  }

  /** One claims request checked against the key's policy and encoded: `header.payload`. Throws a SignetError. */
  #prepare(signing: Signing, request: SignRequest): Unsigned {
    const { policy } = signing;
    let ttl: number | undefined;
    if (request.ttl !== undefined) {
      ttl = parseDuration(request.ttl);
      if (ttl === undefined) throw new InvalidRequestError('ttl: must be a duration such as "15m" or a number of seconds');
    }
    const issued = issueClaims({ claims: request.claims, ttl }, policy, signing.now, newJti);
    const typ = request.headers?.typ;
    let header = signing.header;
    if (typ !== undefined && typ !== policy.allowedTyp[0]) {
      if (!policy.allowedTyp.includes(typ)) {
        throw new ClaimPolicyError(`header typ: not one of this key's allowed_typ (${policy.allowedTyp.join(', ')})`);
      }
      header = this.#header(signing.view, typ);
    }
    return { signingInput: `${header}.${encodePayload(issued.claims)}`, exp: issued.exp, claims: issued.claims };
  }

  /** Hands `header.payload` to the batcher (its digest, where the alg hashes first); `done` gets Vault's answer. */
  #submit(signing: Signing, signingInput: string, index: number, done: SignSettled): void {
    // The pending sign holds its signing input (and the claims behind it) even when Vault gets only its digest.
    this.#batcher.submit(signing.lane, transitSignInput(signingInput, signing.view.spec), signingInput.length, signing.since, index, done);
  }

  /** #submit for one sign (SignBatcher.sign): resolves with Vault's `vault:vN:...` signature. */
  #vaultSign(signing: Signing, signingInput: string): Promise<string> {
    return this.#batcher.sign(signing.lane, transitSignInput(signingInput, signing.view.spec), signingInput.length, signing.since);
  }

  /** The JWS signature segment of Vault's answer: its version checked, ECDSA in low-S form. */
  #signature(signing: Signing, vaultSignature: string): string {
    const { view } = signing;
    const signature = jwsSignatureFromVault(vaultSignature, view.signing.version);
    // One spelling per token: ECDSA signatures go out in their low-S form (/v1/verify refuses the other). About
    // half are low-S already and keep Vault's string.
    if (!view.spec.lowS) return signature;
    const bytes = Buffer.from(signature, 'base64url');
    const low = lowS(view.alg, bytes);
    return low === bytes ? signature : low.toString('base64url');
  }

  #token(signing: Signing, unsigned: Unsigned, vaultSignature: string): SignResult {
    const { view } = signing;
    return {
      token: `${unsigned.signingInput}.${this.#signature(signing, vaultSignature)}`,
      kid: view.signing.kid,
      alg: view.alg,
      key: signing.name,
      key_version: view.signing.version,
      expires_at: unsigned.exp,
      claims: unsigned.claims,
    };
  }
}
