// The algorithm table (DESIGN §4): which JWS algs a Transit key type can produce, and the exact Transit
// parameters that make Vault's signature a valid JWS signature for that alg. No I/O.

export type JwsAlg =
  | 'EdDSA' | 'Ed25519'
  | 'ES256' | 'ES384' | 'ES512'
  | 'RS256' | 'RS384' | 'RS512'
  | 'PS256' | 'PS384' | 'PS512'
  | 'HS256' | 'HS384' | 'HS512';

export type TransitKeyType =
  | 'ed25519' | 'ecdsa-p256' | 'ecdsa-p384' | 'ecdsa-p521'
  | 'rsa-2048' | 'rsa-3072' | 'rsa-4096'
  | 'hmac' | 'aes128-gcm96' | 'aes256-gcm96' | 'chacha20-poly1305';

export type TransitHash = 'sha2-256' | 'sha2-384' | 'sha2-512';

export interface AlgSpec {
  alg: JwsAlg;
  /** `sign` uses transit/sign; `hmac` uses transit/hmac and is verified only through Vault. */
  operation: 'sign' | 'hmac';
  /** Path suffix of transit/sign or transit/hmac; undefined for Ed25519, which hashes internally. */
  hash?: TransitHash;
  /** Extra body parameters of transit/sign (and of transit/verify for the same signature). */
  signParams: Readonly<Record<string, string>>;
  /**
   * ECDSA and RSA: the node:crypto name of `hash`. Signet sends Vault the digest of the signing input
   * (`prehashed: true`) instead of the input itself: the same signature, a sign call a sixth the size for Vault to
   * read. Ed25519 signs the whole message and HMAC keys the input, so neither has one.
   */
  prehash?: 'sha256' | 'sha384' | 'sha512';
  /** Whether the public key may be published in the JWKS. */
  publishable: boolean;
  /** ECDSA: signatures are normalised to low-S before they are returned (one spelling per token). */
  lowS?: boolean;
}

const HASH_OF: Record<string, TransitHash> = { '256': 'sha2-256', '384': 'sha2-384', '512': 'sha2-512' };

const SYMMETRIC_TYPES: readonly TransitKeyType[] = ['hmac', 'aes128-gcm96', 'aes256-gcm96', 'chacha20-poly1305'];

/** The algs each key type can produce, default first. */
const ALGS_FOR_TYPE: Record<TransitKeyType, readonly JwsAlg[]> = {
  'ed25519': ['EdDSA', 'Ed25519'],
  'ecdsa-p256': ['ES256'],
  'ecdsa-p384': ['ES384'],
  'ecdsa-p521': ['ES512'],
  'rsa-2048': ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
  'rsa-3072': ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
  'rsa-4096': ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
  'hmac': ['HS256', 'HS384', 'HS512'],
  'aes128-gcm96': ['HS256', 'HS384', 'HS512'],
  'aes256-gcm96': ['HS256', 'HS384', 'HS512'],
  'chacha20-poly1305': ['HS256', 'HS384', 'HS512'],
};

export const ALL_ALGS: readonly JwsAlg[] = [
  'EdDSA', 'Ed25519', 'ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512', 'HS256', 'HS384', 'HS512',
];

export function isTransitKeyType(value: string): value is TransitKeyType {
  return Object.hasOwn(ALGS_FOR_TYPE, value);
}

export function isJwsAlg(value: string): value is JwsAlg {
  return (ALL_ALGS as readonly string[]).includes(value);
}

export function isSymmetric(type: TransitKeyType): boolean {
  return SYMMETRIC_TYPES.includes(type);
}

/** The algs a key type can produce; the first is the default when the configuration names none. */
export function algsForKeyType(type: TransitKeyType): readonly JwsAlg[] {
  return ALGS_FOR_TYPE[type];
}

/** Transit parameters for an alg. */
export function algSpec(alg: JwsAlg): AlgSpec {
  if (alg === 'EdDSA' || alg === 'Ed25519') {
    // Pure Ed25519: Vault must not prehash, so no hash is sent. marshaling_algorithm=jws makes Vault return
    // base64url, like every other alg (DESIGN §4: always send it).
    return { alg, operation: 'sign', signParams: { marshaling_algorithm: 'jws' }, publishable: true };
  }
  const family = alg.slice(0, 2);
  const hash = HASH_OF[alg.slice(2)]!;
  const prehash = `sha${alg.slice(2)}` as AlgSpec['prehash'];
  switch (family) {
    case 'ES':
      return { alg, operation: 'sign', hash, prehash, signParams: { marshaling_algorithm: 'jws' }, publishable: true, lowS: true };
    case 'RS':
      return {
        alg, operation: 'sign', hash, prehash,
        signParams: { marshaling_algorithm: 'jws', signature_algorithm: 'pkcs1v15' },
        publishable: true,
      };
    case 'PS':
      // JWS PS* requires the salt length to equal the hash length; Vault's default ("auto") does not.
      return {
        alg, operation: 'sign', hash, prehash,
        signParams: { marshaling_algorithm: 'jws', signature_algorithm: 'pss', salt_length: 'hash' },
        publishable: true,
      };
    default:
      return { alg, operation: 'hmac', hash, signParams: {}, publishable: false };
  }
}

/**
 * Picks the alg for a key: the configured one when it fits the key type, else the type's default.
 * Returns an error message (naming the fit) when the configured alg cannot be produced by the key type.
 */
export function resolveAlg(type: TransitKeyType, configured: JwsAlg | undefined): { alg: JwsAlg } | { error: string } {
  const algs = ALGS_FOR_TYPE[type];
  if (configured === undefined) return { alg: algs[0]! };
  if (algs.includes(configured)) return { alg: configured };
  return { error: `alg ${configured} does not fit Transit key type ${type} (it can produce ${algs.join(', ')})` };
}
