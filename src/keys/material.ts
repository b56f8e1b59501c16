// Per-version key material: kid, public JWK, and the key object local verification uses. Built once per kid
// and reused across refreshes (parsing and importing keys is the expensive part of verification).

import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { keyFitsAlg } from '../jwt/signature.ts';
import { VaultResponseError } from '../errors.ts';
import type { JwsAlg, TransitKeyType } from '../jwt/algorithms.ts';
import { isSymmetric } from '../jwt/algorithms.ts';
import type { TransitVersion } from './transit-key.ts';

export interface VersionMaterial {
  kid: string;
  /** Public JWK with kid, alg and use; undefined for HMAC keys, which are never published. */
  jwk?: JWK;
  /** Public key imported once, for local verification; undefined for HMAC keys (verified through Vault). */
  publicKey?: KeyObject;
  /** An HMAC version whose kid is not known here (Vault will not fingerprint it): not findable by kid. */
  unidentified?: boolean;
}

/** Turns Vault's public key of one version into a JWK (without kid/alg/use). */
export function publicJwk(type: TransitKeyType, publicKey: string): { jwk: JWK; key: KeyObject } {
  if (type === 'ed25519') {
    const raw = Buffer.from(publicKey, 'base64');
    if (raw.length !== 32) throw new VaultResponseError('Vault returned an Ed25519 public key that is not 32 bytes');
    const jwk: JWK = { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') };
    return { jwk, key: createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' }) };
  }
  const key = createPublicKey(publicKey);
  return { jwk: key.export({ format: 'jwk' }) as JWK, key };
}

/**
 * The kid of a version. Asymmetric: the RFC 7638 thumbprint of its public JWK: deterministic, the same on every
 * instance, and never the same for different key material (a re-created key gets new kids). Symmetric: the
 * key is secret and Transit gives no creation time for hmac keys, so the kid hashes Vault's HMAC of a fixed
 * label under that version (`fingerprint`): a one-way function of the key material, with the same properties.
 */
/** The fixed label whose HMAC under a version fingerprints that version (see buildMaterial). */
export const HMAC_FINGERPRINT_INPUT = Buffer.from('signet key fingerprint v1').toString('base64');

export async function buildMaterial(
  name: string, type: TransitKeyType, alg: JwsAlg, version: TransitVersion, fingerprint?: string,
): Promise<VersionMaterial> {
  if (isSymmetric(type)) {
    if (!fingerprint) throw new VaultResponseError('an HMAC key version needs its fingerprint to get a kid');
    const digest = createHash('sha256').update(`signet-hmac-kid\0${fingerprint}`).digest();
    return { kid: digest.subarray(0, 16).toString('base64url') };
  }
  if (!version.publicKey) throw new VaultResponseError(`Vault returned no public key for "${name}" version ${version.version}`);
  const { jwk, key } = publicJwk(type, version.publicKey);
  if (!keyFitsAlg(alg, key)) throw new VaultResponseError(`the public key of version ${version.version} does not fit ${alg}`);
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return { kid, jwk: { ...jwk, kid, alg, use: 'sig' }, publicKey: key };
}
