// Transit's wire formats for JWS, both ways: the bytes to sign as Transit takes them, and Vault's
// `vault:vN:<signature>` turned into a JWS signature segment (and back, for HMAC verification). No I/O.

import { hash } from 'node:crypto';
import { VaultResponseError } from '../errors.ts';
import type { AlgSpec } from '../jwt/algorithms.ts';
import { encodeText } from '../jwt/jws.ts';

/** Transit wants `input` as standard base64 of the exact bytes to sign: the ASCII `header.payload`. */
export function transitInput(signingInput: string): string {
  return encodeText(signingInput, 'base64', 'latin1');
}

/**
 * The `input` of a transit/sign call for `header.payload`: its digest where the alg hashes first (the call then
 * says `prehashed: true`, see AlgSpec.prehash), else the input itself.
 */
export function transitSignInput(signingInput: string, spec: AlgSpec): string {
  return spec.prehash ? hash(spec.prehash, signingInput, 'base64') : transitInput(signingInput);
}

// Only the prefix is matched: the signature after it is sliced, not scanned by the expression (this runs per token).
const VAULT_PREFIX = /^vault:v(\d+):/;
/** Characters of standard base64 that base64url spells otherwise (or drops: the padding). */
const STANDARD_BASE64 = /[+/=]/;

/**
 * Turns Vault's `vault:vN:<signature>` into the JWS signature segment, checking that Vault signed with the
 * version the token's kid names. Vault returns base64url for `marshaling_algorithm=jws` and standard base64
 * for HMAC; both are normalised to unpadded base64url.
 */
export function jwsSignatureFromVault(vaultSignature: string, expectedVersion: number): string {
  const match = VAULT_PREFIX.exec(vaultSignature);
  if (!match || match[0].length === vaultSignature.length) {
    throw new VaultResponseError('Vault returned a signature without the vault:vN: prefix');
  }
  const version = Number(match[1]);
  if (version !== expectedVersion) {
    throw new VaultResponseError(`Vault signed with key version ${version}, but version ${expectedVersion} was requested`);
  }
  const signature = vaultSignature.slice(match[0].length);
  // marshaling_algorithm=jws answers base64url already: only standard base64 (HMAC) needs rewriting.
  return STANDARD_BASE64.test(signature) ? signature.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') : signature;
}

/** The `vault:vN:` form Transit's verify endpoint expects for an HMAC, from a JWS signature segment. */
export function vaultHmacFromJws(signature: string, version: number): string {
  return `vault:v${version}:${Buffer.from(signature, 'base64url').toString('base64')}`;
}
