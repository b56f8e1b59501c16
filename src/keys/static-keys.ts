// `static_keys`: public keys Signet publishes and verifies with, never signs with, until a date: for tokens of a key
// that cannot be imported (lost, held by a third party) but whose tokens are still out there. Parsing is pure;
// loadStaticKeys reads the files (once, at start-up), and every error names the field.

import { readFileSync } from 'node:fs';
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import type { StaticKeyConfig } from './config.ts';
import { ConfigError } from '../errors.ts';
import { algSpec, isJwsAlg, type JwsAlg } from '../jwt/algorithms.ts';
import { keyFitsAlg } from '../jwt/signature.ts';

export interface StaticKey {
  name: string;
  kid: string;
  alg: JwsAlg;
  issuer: string;
  /** Seconds since the epoch: published and accepted before, gone from then on. */
  until: number;
  /** Public JWK with kid, alg and use. */
  jwk: JWK;
  publicKey: KeyObject;
}

/** The alg a public key signs with when only one fits (ES*, EdDSA default); RSA keys must say which. */
function defaultAlg(key: KeyObject): JwsAlg | undefined {
  switch (key.asymmetricKeyType) {
    case 'ed25519': return 'EdDSA';
    case 'ec': return ({ prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' } as const)[key.asymmetricKeyDetails?.namedCurve as 'prime256v1'];
    default: return undefined;
  }
}

/** Parses a public key (PEM SubjectPublicKeyInfo, PEM certificate's key, or a JWK) for a `static_keys` entry. */
export function parseStaticKey(text: string, entry: StaticKeyConfig, field: string): StaticKey {
  let key: KeyObject;
  let fileKid: string | undefined;
  let fileAlg: string | undefined;
  const trimmed = text.trim();
  try {
    if (trimmed.startsWith('{')) {
      const jwk = JSON.parse(trimmed) as Record<string, unknown>;
      if (Object.hasOwn(jwk, 'd') || Object.hasOwn(jwk, 'k')) {
        throw new ConfigError(`${field}.file`, 'holds a private or secret key: static_keys take public keys only (import a private key with signet keys import)');
      }
      fileKid = typeof jwk.kid === 'string' ? jwk.kid : undefined;
      fileAlg = typeof jwk.alg === 'string' ? jwk.alg : undefined;
      key = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
    } else {
      if (/PRIVATE KEY/.test(trimmed.slice(0, 100))) {
        throw new ConfigError(`${field}.file`, 'holds a private key: static_keys take public keys only (import a private key with signet keys import)');
      }
      key = createPublicKey(trimmed);
    }
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`${field}.file`, 'is not a public key in PEM or JWK form');
  }
  const kid = entry.kid ?? fileKid;
  if (!kid) throw new ConfigError(`${field}.kid`, 'is required: the kid the old tokens carry (the key file names none)');
  if (entry.kid && fileKid && entry.kid !== fileKid) throw new ConfigError(`${field}.kid`, `differs from the kid in the JWK file ("${fileKid}")`);
  const alg = entry.alg ?? fileAlg ?? defaultAlg(key);
  if (!alg) throw new ConfigError(`${field}.alg`, 'is required for an RSA key (RS256, PS256, …: the alg the old tokens carry)');
  if (!isJwsAlg(alg) || algSpec(alg).operation !== 'sign') throw new ConfigError(`${field}.alg`, `"${alg}" is not an asymmetric JWS alg`);
  if (!keyFitsAlg(alg, key)) throw new ConfigError(`${field}.alg`, `${alg} does not fit this ${key.asymmetricKeyType} key`);
  const jwk = { ...(key.export({ format: 'jwk' }) as JWK), kid, alg, use: 'sig' };
  return { name: entry.name, kid, alg, issuer: entry.issuer, until: entry.until, jwk, publicKey: key };
}

/** Reads and parses every `static_keys` file. */
export function loadStaticKeys(entries: readonly StaticKeyConfig[]): StaticKey[] {
  return entries.map((entry, i) => {
    const field = `static_keys[${i}]`;
    let text: string;
    try {
      text = readFileSync(entry.file, 'utf8');
    } catch (error) {
      throw new ConfigError(`${field}.file`, `cannot read ${entry.file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    return parseStaticKey(text, entry, field);
  });
}
