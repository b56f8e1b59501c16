// Verification behind POST /v1/verify: strict parsing, the kid looked up among published versions only
// (a refresh, rate-limited, when it is unknown), the alg pinned to the version's own, the signature checked
// locally with a pre-imported key (or through Vault for HMAC), then the registered claims.

import { TokenInvalidError, VaultUnavailableError } from '../errors.ts';
import { validateClaims } from '../jwt/claims.ts';
import { transitInput, vaultHmacFromJws } from '../jwt/jws.ts';
import { decodePayload, parseToken } from '../jwt/parse.ts';
import { verifySignature } from '../jwt/signature.ts';
import type { KeyView, Keyring, VersionView } from '../keys/keyring.ts';
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
    let found: { view: KeyView; version: VersionView; verified?: boolean } | undefined = this.#keyring.findKid(header.kid);
    if (!found && (await this.#refresher.refreshForUnknownKid())) found = this.#keyring.findKid(header.kid);
    if (!found && header.alg.startsWith('HS')) found = await this.#findUnidentified(parsed.signingInput, parsed.signature, header.alg, header.kid);
    if (!found) throw new TokenInvalidError('header kid: not in the key set (unknown or retired key version)');
    const { view, version } = found;
    if (request.key !== undefined && view.name !== request.key) {
      throw new TokenInvalidError('header kid: the token is not signed by the requested key');
    }
    if (header.alg !== view.alg) throw new TokenInvalidError(`header alg: ${header.alg} is not the alg of this key (${view.alg})`);

    if (view.spec.operation === 'hmac') {
      if (!found.verified && !(await this.#checkHmac(view, version.version, parsed.signingInput, parsed.signature))) {
        throw new TokenInvalidError('signature: does not verify');
      }
    } else {
      if (!verifySignature(view.alg, version.publicKey!, parsed.signingInput, parsed.signatureBytes)) {
        throw new TokenInvalidError('signature: does not verify');
      }
    }

    // Explicit typing (RFC 8725 §3.11), once the signature is known good: a token of another type (an at+jwt
    // where a JWT is expected…) is refused. A missing typ means "JWT" (RFC 7519 §5.1).
    const typ = header.typ ?? 'JWT';
    if (typeof typ !== 'string' || !view.config.allowedTyp.includes(typ)) {
      throw new TokenInvalidError(`header typ: not one of this key's allowed_typ (${view.config.allowedTyp.join(', ')})`);
    }
    const claims = decodePayload(parsed.payloadSegment);
    const errors = validateClaims(claims, {
      issuer: request.issuer ?? view.config.issuer,
      audience: request.audience,
      requireAudience: view.config.requireAudience,
      clockSkew: this.#clockSkew,
      now: Date.now() / 1000,
    });
    if (errors.length > 0) throw new TokenInvalidError(errors);
    return { valid: true, key: view.name, key_version: version.version, kid: header.kid, alg: view.alg, header, claims };
  }

  /** Vault checks an HMAC (the key never leaves it); bounded in flight, past which the caller gets a 503. */
  async #checkHmac(view: KeyView, version: number, signingInput: string, signature: string): Promise<boolean> {
    if (this.#hmacChecks >= MAX_HMAC_CHECKS) {
      throw new VaultUnavailableError('verify', `Signet is overloaded: ${MAX_HMAC_CHECKS} HMAC verifications are already waiting for Vault; retry shortly`, 1, 'overloaded');
    }
    this.#hmacChecks++;
    try {
      return await this.#transit.verifyHmac(view.name, view.spec, transitInput(signingInput), vaultHmacFromJws(signature, version));
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
      if (await this.#checkHmac(candidate.view, candidate.version.version, signingInput, signature)) {
        this.#refresher.learnKid(candidate.view.name, candidate.version.version, kid);
        return { ...candidate, verified: true };
      }
    }
    return undefined;
  }
}
