// Verification behind POST /v1/verify: strict parsing, the kid looked up among published versions only
// (a refresh, rate-limited, when it is unknown), the alg pinned to the version's own, the signature checked
// locally with a pre-imported key (or through Vault for HMAC), then the registered claims.

import { TokenInvalidError } from '../errors.ts';
import { validateClaims } from '../jwt/claims.ts';
import { transitInput, vaultHmacFromJws } from '../jwt/jws.ts';
import { decodePayload, parseToken } from '../jwt/parse.ts';
import { verifySignature } from '../jwt/signature.ts';
import type { Keyring } from '../keys/keyring.ts';
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
    let found = this.#keyring.findKid(header.kid);
    if (!found && (await this.#refresher.refreshForUnknownKid())) found = this.#keyring.findKid(header.kid);
    if (!found) throw new TokenInvalidError('header kid: not in the key set (unknown or retired key version)');
    const { view, version } = found;
    if (header.alg !== view.alg) throw new TokenInvalidError(`header alg: ${header.alg} is not the alg of this key (${view.alg})`);

    if (view.spec.operation === 'hmac') {
      const valid = await this.#transit.verifyHmac(
        view.name, view.spec, transitInput(parsed.signingInput), vaultHmacFromJws(parsed.signature, version.version),
      );
      if (!valid) throw new TokenInvalidError('signature: does not verify');
    } else {
      if (!verifySignature(view.alg, version.publicKey!, parsed.signingInput, parsed.signatureBytes)) {
        throw new TokenInvalidError('signature: does not verify');
      }
    }

    const claims = decodePayload(parsed.payloadSegment);
    const errors = validateClaims(claims, {
      issuer: request.issuer ?? view.config.issuer,
      audience: request.audience,
      clockSkew: this.#clockSkew,
      now: Date.now() / 1000,
    });
    if (errors.length > 0) throw new TokenInvalidError(errors);
    return { valid: true, key: view.name, key_version: version.version, kid: version.kid, alg: view.alg, header, claims };
  }
}
