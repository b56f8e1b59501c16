// Verification behind POST /v1/verify: strict parsing, the kid looked up among published versions only
// (a refresh, rate-limited, when it is unknown), the alg pinned to the version's own, the signature checked
// locally with a pre-imported key (or through Vault for HMAC), then the registered claims. Tokens minted before
// a key was imported are found through its alias (legacy_kid, or no kid with accept_missing_kid) while it lasts,
// and those of static_keys until their date.

import { TokenInvalidError, VaultUnavailableError } from '../errors.ts';
import { validateClaims } from '../jwt/claims.ts';
import { transitInput, vaultHmacFromJws } from '../vault/wire.ts';
import { decodePayload, parseToken } from '../jwt/parse.ts';
import { lowS, verifySignature } from '../jwt/signature.ts';
import type { AlgSpec } from '../jwt/algorithms.ts';
import { targetOf, type Keyring, type VerificationTarget } from '../keys/keyring.ts';
import type { Transit } from '../vault/transit.ts';

export interface VerifyRequest {
  token: string;
  audience?: string;
  issuer?: string;
  /** Accept only tokens of this configured key (a token of another key is refused even if it verifies). */
  key?: string;
}

export interface VerifyResult {
  valid: true;
  key: string;
  key_version: number;
  kid: string;
  alg: string;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  /** How the key was found: by Signet's kid, or through an alias or static key (old tokens; not in the response). */
  via: VerificationTarget['via'];
}

export interface KidRefresher {
  refreshForUnknownKid(): Promise<boolean>;
  learnKid(name: string, version: number, kid: string): void;
}

/** HMAC checks in flight at once (each is a Vault call): any local caller could otherwise drive Vault's load. */
export const MAX_HMAC_CHECKS = 32;
/** Unidentified HMAC versions tried for one token whose kid is unknown. */
const MAX_UNIDENTIFIED_TRIES = 4;

export class Verifier {
  readonly #keyring: Keyring;
  readonly #refresher: KidRefresher;
  readonly #transit: Transit;
  readonly #clockSkew: number;
  #hmacChecks = 0;

  constructor(keyring: Keyring, refresher: KidRefresher, transit: Transit, clockSkew: number) {
    this.#keyring = keyring;
    this.#refresher = refresher;
    this.#transit = transit;
    this.#clockSkew = clockSkew;
  }

  async verify(request: VerifyRequest): Promise<VerifyResult> {
    const parsed = parseToken(request.token);
    const { header } = parsed;
    let found: (VerificationTarget & { verified?: boolean }) | undefined = this.#keyring.resolve(header.kid);
    if (header.kid !== undefined) {
      if (!found && (await this.#refresher.refreshForUnknownKid())) found = this.#keyring.resolve(header.kid);
      if (!found && header.alg.startsWith('HS')) found = await this.#findUnidentified(parsed.signingInput, parsed.signature, header.alg, header.kid);
    }
    if (!found) {
      throw new TokenInvalidError(header.kid === undefined
        ? 'header kid: missing'
        : 'header kid: not in the key set (unknown or retired key version)');
    }
    const target = found;
    if (request.key !== undefined && target.key !== request.key) {
      throw new TokenInvalidError('header kid: the token is not signed by the requested key');
    }
    if (header.alg !== target.alg) throw new TokenInvalidError(`header alg: ${header.alg} is not the alg of this key (${target.alg})`);

    if (target.spec.operation === 'hmac') {
      if (!found.verified && !(await this.#checkHmac(target.key, target.spec, target.version, parsed.signingInput, parsed.signature))) {
        throw new TokenInvalidError('signature: does not verify');
      }
    } else {
      // Signet's own ECDSA signatures are low-S only. Tokens minted before an import (or by a static key's signer)
      // were not normalised, so about half of the old ES* ones are high-S: their low-S twin is checked instead.
      const signature = target.via === 'kid' ? parsed.signatureBytes : lowS(target.alg, parsed.signatureBytes);
      if (!verifySignature(target.alg, target.publicKey!, parsed.signingInput, signature)) {
        throw new TokenInvalidError('signature: does not verify');
      }
    }

    // Explicit typing (RFC 8725 §3.11), once the signature is known good: a token of another type (an at+jwt
    // where a JWT is expected…) is refused. A missing typ means "JWT" (RFC 7519 §5.1).
    const typ = header.typ ?? 'JWT';
    if (typeof typ !== 'string' || !target.allowedTyp.includes(typ)) {
      throw new TokenInvalidError(`header typ: not one of this key's allowed_typ (${target.allowedTyp.join(', ')})`);
    }
    const claims = decodePayload(parsed.payloadSegment);
    const errors = validateClaims(claims, {
      issuer: request.issuer ?? target.issuer,
      audience: request.audience,
      requireAudience: target.requireAudience,
      clockSkew: this.#clockSkew,
      now: Date.now() / 1000,
    });
    if (errors.length > 0) throw new TokenInvalidError(errors);
    return {
      valid: true, key: target.key, key_version: target.version, kid: header.kid ?? target.kid, alg: target.alg, header, claims, via: target.via,
    };
  }

  /** Vault checks an HMAC (the key never leaves it); bounded in flight, past which the caller gets a 503. */
  async #checkHmac(name: string, spec: AlgSpec, version: number, signingInput: string, signature: string): Promise<boolean> {
    if (this.#hmacChecks >= MAX_HMAC_CHECKS) {
      throw new VaultUnavailableError('verify', `Signet is overloaded: ${MAX_HMAC_CHECKS} HMAC verifications are already waiting for Vault; retry shortly`, 1, 'overloaded');
    }
    this.#hmacChecks++;
    try {
      return await this.#transit.verifyHmac(name, spec, transitInput(signingInput), vaultHmacFromJws(signature, version));
    } finally {
      this.#hmacChecks--;
    }
  }

  /**
   * An HS token whose kid is unknown may belong to a version Vault will not fingerprint (below
   * min_encryption_version): try those versions, newest first. Sound because only Vault can make a valid HMAC,
   * and Signet signs each version only under its own kid; the kid is then learnt for the next token.
   */
  async #findUnidentified(signingInput: string, signature: string, alg: string, kid: string) {
    for (const candidate of this.#keyring.unidentified(MAX_UNIDENTIFIED_TRIES)) {
      if (candidate.view.alg !== alg) continue;
      if (await this.#checkHmac(candidate.view.name, candidate.view.spec, candidate.version.version, signingInput, signature)) {
        this.#refresher.learnKid(candidate.view.name, candidate.version.version, kid);
        return { ...targetOf(candidate.view, candidate.version), verified: true };
      }
    }
    return undefined;
  }
}
