// Verification behind POST /v1/verify: strict parsing, the kid looked up among published versions only
// (a refresh, rate-limited, when it is unknown), the alg pinned to the version's own, the signature checked
// locally with a pre-imported key (or through Vault for HMAC), then the registered claims. Tokens minted before
// a key was imported are found through its alias (legacy_kid, or no kid with accept_missing_kid) while it lasts,
// and those of static_keys until their date.

import { TokenInvalidError } from '../errors.ts';
import { validateClaims } from '../jwt/claims.ts';
import { transitInput, vaultHmacFromJws } from '../jwt/jws.ts';
import { decodePayload, parseToken } from '../jwt/parse.ts';
import { verifySignature } from '../jwt/signature.ts';
import type { Keyring, VerificationTarget } from '../keys/keyring.ts';
import type { Transit } from '../vault/transit.ts';

export interface VerifyRequest {
  token: string;
  audience?: string;
  issuer?: string;
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
}

export class Verifier {
  readonly #keyring: Keyring;
  readonly #refresher: KidRefresher;
  readonly #transit: Transit;
  readonly #clockSkew: number;

  constructor(keyring: Keyring, refresher: KidRefresher, transit: Transit, clockSkew: number) {
    this.#keyring = keyring;
    this.#refresher = refresher;
    this.#transit = transit;
    this.#clockSkew = clockSkew;
  }

  async verify(request: VerifyRequest): Promise<VerifyResult> {
    const parsed = parseToken(request.token);
    const { header } = parsed;
    let target = this.#keyring.resolve(header.kid);
    if (!target && header.kid !== undefined && (await this.#refresher.refreshForUnknownKid())) target = this.#keyring.resolve(header.kid);
    if (!target) {
      throw new TokenInvalidError(header.kid === undefined
        ? 'header kid: missing'
        : 'header kid: not in the key set (unknown or retired key version)');
    }
    if (header.alg !== target.alg) throw new TokenInvalidError(`header alg: ${header.alg} is not the alg of this key (${target.alg})`);

    if (target.spec.operation === 'hmac') {
      const valid = await this.#transit.verifyHmac(
        target.key, target.spec, transitInput(parsed.signingInput), vaultHmacFromJws(parsed.signature, target.version),
      );
      if (!valid) throw new TokenInvalidError('signature: does not verify');
    } else {
      if (!verifySignature(target.alg, target.publicKey!, parsed.signingInput, parsed.signatureBytes)) {
        throw new TokenInvalidError('signature: does not verify');
      }
    }

    const claims = decodePayload(parsed.payloadSegment);
    const errors = validateClaims(claims, {
      issuer: request.issuer ?? target.issuer,
      audience: request.audience,
      clockSkew: this.#clockSkew,
      now: Date.now() / 1000,
    });
    if (errors.length > 0) throw new TokenInvalidError(errors);
    return { valid: true, key: target.key, key_version: target.version, kid: target.kid, alg: target.alg, header, claims, via: target.via };
  }
}
