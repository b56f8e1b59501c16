// `signet keys import`: the pure parts. Checking what an operator hands in (key file mode, key type and size, HMAC
// secret length) and wrapping the key for Transit's bring-your-own-key endpoint. No I/O: the CLI reads the file and
// talks to Vault (src/keys/admin.ts).
//
// Transit BYOK (POST <mount>/keys/NAME/import): an ephemeral AES-256 key wraps the target key with AES-KWP
// (RFC 5649, OpenSSL's id-aes256-wrap-pad); RSA-OAEP with SHA-256 under Vault's wrapping key (RSA-4096, from
// GET <mount>/wrapping_key) wraps the AES key; the ciphertext is base64(oaep(aes) || kwp(target)). The target is
// the private key's PKCS#8 DER, or the raw secret for an hmac key.

import { constants, createCipheriv, createPrivateKey, createPublicKey, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { SignetError, VaultResponseError } from '../errors.ts';
import { algsForKeyType, type JwsAlg, type TransitKeyType } from '../jwt/algorithms.ts';

/** Following RFC 7518 §3.2 and the usual rule for JWT secrets: at least 256 bits. */
export const MIN_HMAC_SECRET_BYTES = 32;
/** Transit's upper bound for an imported hmac key (keysutil.HmacMaxKeySize). */
export const MAX_HMAC_SECRET_BYTES = 4096;
export const MIN_RSA_BITS = 2048;
/** RFC 5649's alternative initial value, the one OpenSSL's id-aes256-wrap-pad uses by default. */
const KWP_IV = Buffer.from('A65959A6', 'hex');
/** Transit's wrapping key is RSA-4096: its OAEP output is 512 bytes (Vault splits the ciphertext there). */
const WRAPPED_AES_BYTES = 512;

export class ImportRefused extends SignetError {
  constructor(message: string) {
    super(400, 'import_refused', message);
  }
}

/** A key ready to be wrapped: its Transit type, the alg it will sign with, and the bytes Transit expects. */
export interface ImportMaterial {
  type: TransitKeyType;
  alg: JwsAlg;
  /** PKCS#8 DER of the private key, or the raw HMAC secret. The caller zeroes it after use. */
  material: Buffer;
  /** The public key (asymmetric keys): to check Vault's copy against after the import. */
  publicKey?: KeyObject;
  /** The kid of a JWK key file, if it had one (a hint for legacy_kid). */
  kid?: string;
}

/**
 * Refuses a key file that group or others can read (the plaintext should be readable by its owner alone while it
 * still exists), unless `force`. `mode` is stat's st_mode.
 */
export function checkKeyFileMode(path: string, mode: number, force: boolean): void {
  if ((mode & 0o044) === 0 || force) return;
  throw new ImportRefused(
    `${path} is readable by ${mode & 0o040 ? 'its group' : ''}${(mode & 0o040) && (mode & 0o004) ? ' and ' : ''}${mode & 0o004 ? 'others' : ''}`
      + ` (mode ${(mode & 0o777).toString(8).padStart(3, '0')}): anyone who read it can sign as you, and importing it would not change that.`
      + ` Run chmod 600 ${path} (and consider whether the key leaked), or pass --force to import it anyway`,
  );
}

const CURVE_TYPES: Record<string, TransitKeyType> = {
  prime256v1: 'ecdsa-p256', secp384r1: 'ecdsa-p384', secp521r1: 'ecdsa-p521',
};

function pickAlg(type: TransitKeyType, alg: string | undefined): JwsAlg {
  const algs = algsForKeyType(type);
  if (alg === undefined) return algs[0]!;
  if (!(algs as readonly string[]).includes(alg)) {
    throw new ImportRefused(`--alg ${alg} does not fit this key (Transit type ${type} signs ${algs.join(', ')}): pass the alg your tokens carry in their header`);
  }
  return alg as JwsAlg;
}

/**
 * Reads a private key (PEM: PKCS#8, PKCS#1 or SEC1; or a private JWK as JSON) and decides its Transit type.
 * RSA must be 2048, 3072 or 4096 bits; EC P-256, P-384 or P-521; or Ed25519.
 */
export function privateKeyMaterial(text: string, alg?: string): ImportMaterial {
  let key: KeyObject;
  let kid: string | undefined;
  const trimmed = text.trim();
  try {
    if (trimmed.startsWith('{')) {
      const jwk = JSON.parse(trimmed) as Record<string, unknown>;
      if (typeof jwk.d !== 'string') throw new ImportRefused('the JWK has no private part ("d"): Transit needs the private key to sign');
      kid = typeof jwk.kid === 'string' ? jwk.kid : undefined;
      key = createPrivateKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
    } else {
      key = createPrivateKey({ key: trimmed, format: 'pem' });
    }
  } catch (error) {
    if (error instanceof ImportRefused) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (/PASSPHRASE|BAD_DECRYPT/i.test(code) || /ENCRYPTED/.test(trimmed.slice(0, 200))) {
      throw new ImportRefused('the key file is encrypted: decrypt it to a file only you can read first (openssl pkey -in FILE -out PLAIN && chmod 600 PLAIN)');
    }
    if (/PUBLIC KEY/.test(trimmed.slice(0, 100))) throw new ImportRefused('this is a public key: Transit needs the private key to sign (for a key you only hold the public half of, see static_keys)');
    throw new ImportRefused('not a private key in PEM (PKCS#8, PKCS#1 or SEC1) or JWK form');
  }
  let type: TransitKeyType;
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) {
        throw new ImportRefused(`RSA-${bits} is too weak to keep signing with (at least ${MIN_RSA_BITS} bits): create a new key instead (signet keys create NAME --type rsa-2048) and let the old tokens expire, publishing the old public key meanwhile through static_keys`);
      }
      if (![2048, 3072, 4096].includes(bits)) throw new ImportRefused(`Transit imports RSA keys of 2048, 3072 or 4096 bits, not ${bits}`);
      type = `rsa-${bits}` as TransitKeyType;
      break;
    }
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? 'unknown';
      const mapped = CURVE_TYPES[curve];
      if (!mapped) throw new ImportRefused(`EC curve ${curve} is not one JWS and Transit share (P-256, P-384, P-521)`);
      type = mapped;
      break;
    }
    case 'ed25519':
      type = 'ed25519';
      break;
    default:
      throw new ImportRefused(`${key.asymmetricKeyType ?? 'this'} keys cannot sign JWTs through Transit (RSA, EC P-256/384/521 and Ed25519 can)`);
  }
  return {
    type,
    alg: pickAlg(type, alg),
    material: key.export({ format: 'der', type: 'pkcs8' }) as Buffer,
    publicKey: createPublicKey(key),
    kid,
  };
}

export type SecretEncoding = 'raw' | 'base64' | 'base64url';

/**
 * An HMAC secret from a file: `raw` takes the bytes as they are (one trailing newline dropped, as `echo > file`
 * adds it: the app used the value without it), which is what most JWT libraries do with a string secret;
 * `base64`/`base64url` decode it first, for apps that decode their secret before use.
 */
export function hmacMaterial(file: Buffer, encoding: SecretEncoding, alg?: string): ImportMaterial {
  let secret: Buffer;
  const text = file.toString('latin1').replace(/\r?\n$/, '');
  if (encoding === 'raw') {
    secret = Buffer.from(text, 'latin1');
  } else {
    const body = text.trim();
    const pattern = encoding === 'base64' ? /^[A-Za-z0-9+/]+={0,2}$/ : /^[A-Za-z0-9_-]+$/;
    if (!pattern.test(body)) throw new ImportRefused(`the secret file is not ${encoding} (use --hmac-encoding raw if the app uses the file's bytes as they are)`);
    secret = Buffer.from(body, encoding);
  }
  if (secret.length < MIN_HMAC_SECRET_BYTES) {
    const length = secret.length;
    secret.fill(0);
    throw new ImportRefused(
      `the HMAC secret is ${length} bytes (${length * 8} bits); a JWT secret must have at least ${MIN_HMAC_SECRET_BYTES} bytes (256 bits), or it can be guessed offline from any token.`
        + ' Do not import it: create a new key (signet keys create NAME --type hmac) and let the old tokens expire'
        + (encoding === 'raw' ? ' (if the file holds the secret base64-encoded, pass --hmac-encoding base64)' : ''),
    );
  }
  if (secret.length > MAX_HMAC_SECRET_BYTES) {
    secret.fill(0);
    throw new ImportRefused(`the HMAC secret is longer than Transit accepts (${MAX_HMAC_SECRET_BYTES} bytes)`);
  }
  return { type: 'hmac', alg: pickAlg('hmac', alg), material: secret };
}

/** RFC 5649 key wrap with padding (AES-KWP); Transit's import takes a 256-bit wrapping key. */
export function aesKwpWrap(kek: Buffer, plaintext: Buffer): Buffer {
  const bits = kek.length * 8;
  if (![128, 192, 256].includes(bits)) throw new RangeError('AES-KWP needs a 128, 192 or 256-bit key');
  const cipher = createCipheriv(`id-aes${bits}-wrap-pad`, kek, KWP_IV);
  return Buffer.concat([cipher.update(plaintext), cipher.final()]);
}

/**
 * The `ciphertext` of Transit's import endpoint: base64(RSA-OAEP-SHA256(wrappingKey, aes) || KWP(aes, material)).
 * The ephemeral AES key is zeroed before this returns (`aesKey` may be passed for tests; it is zeroed too).
 */
export function wrapForTransit(wrappingKeyPem: string, material: Buffer, aesKey: Buffer = randomBytes(32)): string {
  try {
    const wrappingKey = createPublicKey(wrappingKeyPem);
    if (wrappingKey.asymmetricKeyType !== 'rsa' || wrappingKey.asymmetricKeyDetails?.modulusLength !== WRAPPED_AES_BYTES * 8) {
      throw new VaultResponseError('Vault\'s transit/wrapping_key is not an RSA-4096 public key');
    }
    const wrappedAes = publicEncrypt({ key: wrappingKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, aesKey);
    return Buffer.concat([wrappedAes, aesKwpWrap(aesKey, material)]).toString('base64');
  } finally {
    aesKey.fill(0);
  }
}
