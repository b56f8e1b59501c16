// JWS signature verification of one alg with a public key imported once (DESIGN §9: local verification near raw
// crypto.verify speed). node:crypto's synchronous verify, with exactly the parameters RFC 7518 fixes for each
// alg: ECDSA signatures in the fixed-length R||S form (checked), RSA-PSS with the salt as long as the hash, and
// pure Ed25519. jose's compactVerify does the same checks through WebCrypto at about half the speed for RSA;
// everything else it checks (crit, b64, alg pinning, header members) parse.ts and the verifier do already.
// No I/O.

import { constants, verify, type KeyObject } from 'node:crypto';
import type { JwsAlg } from './algorithms.ts';

interface Verification {
  digest: string | null;
  options: { padding?: number; saltLength?: number; dsaEncoding?: 'ieee-p1363' };
  /** Exact signature length in bytes, where the alg fixes it. */
  length?: number;
  keyType: 'ec' | 'rsa' | 'ed25519';
  curve?: string;
  /** Set below: no options, so the KeyObject is passed as it is. */
  plain?: boolean;
}

const TABLE: Partial<Record<JwsAlg, Verification>> = {
  EdDSA: { digest: null, options: {}, length: 64, keyType: 'ed25519' },
  Ed25519: { digest: null, options: {}, length: 64, keyType: 'ed25519' },
  ES256: { digest: 'sha256', options: { dsaEncoding: 'ieee-p1363' }, length: 64, keyType: 'ec', curve: 'prime256v1' },
  ES384: { digest: 'sha384', options: { dsaEncoding: 'ieee-p1363' }, length: 96, keyType: 'ec', curve: 'secp384r1' },
  ES512: { digest: 'sha512', options: { dsaEncoding: 'ieee-p1363' }, length: 132, keyType: 'ec', curve: 'secp521r1' },
  // PKCS#1 v1.5 is node:crypto's default for RSA keys. Passing the KeyObject itself, not {key, padding}, matters:
  // an options object costs a key preparation per call (15.7 → 23.7 µs per RS256 verify, measured).
  RS256: { digest: 'sha256', options: {}, keyType: 'rsa' },
  RS384: { digest: 'sha384', options: {}, keyType: 'rsa' },
  RS512: { digest: 'sha512', options: {}, keyType: 'rsa' },
  PS256: { digest: 'sha256', options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, keyType: 'rsa' },
  PS384: { digest: 'sha384', options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, keyType: 'rsa' },
  PS512: { digest: 'sha512', options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 }, keyType: 'rsa' },
};

for (const entry of Object.values(TABLE)) entry.plain = Object.keys(entry.options).length === 0;

/**
 * Group orders of the ECDSA curves. For every ECDSA signature (r, s), (r, n − s) verifies too: one token would
 * have two spellings (malleability), and Vault's signatures are high-S about half the time. Signet answers only
 * the low-S form (s ≤ n/2) and refuses the other.
 */
const CURVE_ORDER: Partial<Record<JwsAlg, bigint>> = {
  ES256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  ES384: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  ES512: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
};

/** A curve's order and n/2 as big-endian bytes of the scalar's length: the checks below are byte operations. */
const ORDER_BYTES: Partial<Record<JwsAlg, { order: Buffer; half: Buffer }>> = Object.fromEntries(Object.entries(CURVE_ORDER).map(([alg, order]) => {
  const bytes = TABLE[alg as JwsAlg]!.length! / 2;
  const big = (n: bigint) => Buffer.from(n.toString(16).padStart(bytes * 2, '0'), 'hex');
  return [alg, { order: big(order), half: big(order >> 1n) }];
}));

/** Whether `signature` (R||S) of an ECDSA alg has s > n/2. False for other algs. */
export function isHighS(alg: JwsAlg, signature: Buffer): boolean {
  const half = ORDER_BYTES[alg]?.half;
  if (half === undefined || signature.length !== half.length * 2) return false;
  return Buffer.compare(signature.subarray(half.length), half) > 0;
}

/**
 * The low-S form of an ECDSA signature (R||S, fixed length): s replaced by n − s when s > n/2. Others unchanged.
 * The subtraction runs on the bytes (about half of Vault's signatures are high-S: this is on the sign path).
 */
export function lowS(alg: JwsAlg, signature: Buffer): Buffer {
  const curve = ORDER_BYTES[alg];
  if (curve === undefined || !isHighS(alg, signature)) return signature;
  const { order } = curve;
  const half = order.length;
  const low = Buffer.allocUnsafe(signature.length);
  signature.copy(low, 0, 0, half);
  let borrow = 0;
  for (let i = half - 1; i >= 0; i--) {
    const digit = order[i]! - signature[half + i]! - borrow;
    borrow = digit < 0 ? 1 : 0;
    low[half + i] = digit & 0xff;
  }
  return low;
}

/** Whether `key` is a key `alg` may use (checked once, when a version's key is imported). */
export function keyFitsAlg(alg: JwsAlg, key: KeyObject): boolean {
  const entry = TABLE[alg];
  if (!entry || key.type !== 'public' || key.asymmetricKeyType !== entry.keyType) return false;
  if (entry.curve && key.asymmetricKeyDetails?.namedCurve !== entry.curve) return false;
  if (entry.keyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) return false;
  return true;
}

/** Verifies a JWS signature over the ASCII signing input. False for any mismatch, never throws on bad input. */
export function verifySignature(alg: JwsAlg, key: KeyObject, signingInput: string, signature: Buffer): boolean {
  const entry = TABLE[alg];
  if (!entry) return false;
  if (entry.length !== undefined && signature.length !== entry.length) return false;
  // RSA: exactly the modulus's length (RFC 8017 §8.2.2). OpenSSL also accepts a signature whose leading zero
  // bytes are dropped: a second spelling of the same token.
  if (entry.keyType === 'rsa' && signature.length * 8 !== key.asymmetricKeyDetails?.modulusLength) return false;
  if (isHighS(alg, signature)) return false;
  try {
    const keyInput = entry.plain ? key : { key, ...entry.options };
    return verify(entry.digest, Buffer.from(signingInput, 'ascii'), keyInput, signature);
  } catch {
    return false;
  }
}
