// The pure parts of `signet keys import`: AES-KWP against RFC 5649's vectors, the Transit BYOK wrapping undone with
// the wrapping key's private half (as Vault does), and the input checks with their messages.

import assert from 'node:assert/strict';
import { constants, createDecipheriv, generateKeyPairSync, privateDecrypt, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  ImportRefused, MIN_HMAC_SECRET_BYTES, aesKwpWrap, checkKeyFileMode, hmacMaterial, privateKeyMaterial, wrapForTransit,
} from '../../src/keys/import.ts';

function refused(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ImportRefused, `expected ImportRefused, got ${String(error)}`);
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
}

const pem = (key: { export(o: object): string | Buffer }) => key.export({ format: 'pem', type: 'pkcs8' }) as string;

describe('AES-KWP (RFC 5649)', () => {
  // RFC 5649 §6: a 192-bit KEK wrapping 20 and 7 octets.
  const kek = Buffer.from('5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8', 'hex');
  test('the RFC 5649 test vectors', () => {
    assert.equal(aesKwpWrap(kek, Buffer.from('c37b7e6492584340bed12207808941155068f738', 'hex')).toString('hex'),
      '138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a');
    assert.equal(aesKwpWrap(kek, Buffer.from('466f7250617369', 'hex')).toString('hex'), 'afbeb0f07dfbf5419200f2ccb50bb24f');
  });

  test('refuses a key that is not AES-128/192/256', () => {
    assert.throws(() => aesKwpWrap(Buffer.alloc(20), Buffer.alloc(8)), RangeError);
  });
});

describe('wrapForTransit: what Vault unwraps', () => {
  const wrapping = generateKeyPairSync('rsa', { modulusLength: 4096 });
  const wrappingPem = wrapping.publicKey.export({ format: 'pem', type: 'spki' }) as string;

  test('base64(RSA-OAEP-SHA256(aes) || KWP(aes, material)): unwrapping gives back the material; the AES key is zeroed', () => {
    const material = randomBytes(1217);
    const aes = randomBytes(32);
    const aesCopy = Buffer.from(aes);
    const ciphertext = Buffer.from(wrapForTransit(wrappingPem, material, aes), 'base64');
    assert.ok(aes.every((b) => b === 0), 'the ephemeral key is zeroed');
    assert.equal(ciphertext.length, 512 + Math.ceil(material.length / 8) * 8 + 8);
    const unwrappedAes = privateDecrypt({ key: wrapping.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, ciphertext.subarray(0, 512));
    assert.deepEqual(unwrappedAes, aesCopy);
    const decipher = createDecipheriv('id-aes256-wrap-pad', unwrappedAes, Buffer.from('A65959A6', 'hex'));
    assert.deepEqual(Buffer.concat([decipher.update(ciphertext.subarray(512)), decipher.final()]), material);
  });

  test('the material does not appear in the ciphertext, and two wraps differ (a fresh AES key each time)', () => {
    const material = Buffer.alloc(64, 0x41);
    const a = wrapForTransit(wrappingPem, material);
    const b = wrapForTransit(wrappingPem, material);
    assert.notEqual(a, b);
    assert.ok(!Buffer.from(a, 'base64').includes(material));
  });

  test('refuses a wrapping key that is not RSA-4096', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'pem', type: 'spki' }) as string;
    assert.throws(() => wrapForTransit(small, Buffer.alloc(32)), /not an RSA-4096 public key/);
  });
});

describe('private keys: type, size and alg', () => {
  test('RSA 2048/3072, EC P-256/384/521 and Ed25519 map to their Transit types; the material is PKCS#8 DER', () => {
    const cases: Array<[Parameters<typeof generateKeyPairSync>, string, string]> = [
      [['rsa', { modulusLength: 2048 }] as never, 'rsa-2048', 'RS256'],
      [['rsa', { modulusLength: 3072 }] as never, 'rsa-3072', 'RS256'],
      [['ec', { namedCurve: 'P-256' }] as never, 'ecdsa-p256', 'ES256'],
      [['ec', { namedCurve: 'P-384' }] as never, 'ecdsa-p384', 'ES384'],
      [['ec', { namedCurve: 'P-521' }] as never, 'ecdsa-p521', 'ES512'],
      [['ed25519'] as never, 'ed25519', 'EdDSA'],
    ];
    for (const [args, type, alg] of cases) {
      const { privateKey } = (generateKeyPairSync as (...a: unknown[]) => { privateKey: { export(o: object): Buffer | string } })(...args);
      const result = privateKeyMaterial(pem(privateKey));
      assert.equal(result.type, type);
      assert.equal(result.alg, alg);
      assert.deepEqual(result.material, privateKey.export({ format: 'der', type: 'pkcs8' }));
      assert.equal(result.publicKey?.type, 'public');
    }
  });

  test('PKCS#1 and SEC1 PEM, and a private JWK (its kid kept as a hint)', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    assert.equal(privateKeyMaterial(rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }) as string, 'PS256').alg, 'PS256');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assert.equal(privateKeyMaterial(ec.privateKey.export({ format: 'pem', type: 'sec1' }) as string).type, 'ecdsa-p256');
    const jwk = { ...ec.privateKey.export({ format: 'jwk' }), kid: 'old-kid-1' };
    const fromJwk = privateKeyMaterial(JSON.stringify(jwk));
    assert.equal(fromJwk.kid, 'old-kid-1');
    assert.deepEqual(fromJwk.material, ec.privateKey.export({ format: 'der', type: 'pkcs8' }));
  });

  test('RSA-1024 is refused, saying why and what to do instead', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    refused(() => privateKeyMaterial(pem(privateKey)), /RSA-1024 is too weak/, /at least 2048 bits/, /signet keys create/, /static_keys/);
  });

  test('an alg that does not fit the key, a public key, an encrypted key, garbage, an unsupported curve or type', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    refused(() => privateKeyMaterial(pem(ec.privateKey), 'RS256'), /--alg RS256 does not fit/, /ES256/);
    refused(() => privateKeyMaterial(ec.publicKey.export({ format: 'pem', type: 'spki' }) as string), /public key/, /static_keys/);
    const encrypted = ec.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string;
    refused(() => privateKeyMaterial(encrypted), /encrypted/, /openssl pkey/);
    refused(() => privateKeyMaterial('hello'), /not a private key/);
    refused(() => privateKeyMaterial(pem(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey)), /curve secp256k1/);
    refused(() => privateKeyMaterial(pem(generateKeyPairSync('x25519').privateKey)), /x25519 keys cannot sign/);
    refused(() => privateKeyMaterial(JSON.stringify(ec.publicKey.export({ format: 'jwk' }))), /no private part/);
  });
});

describe('HMAC secrets', () => {
  test('raw: the bytes as they are, one trailing newline dropped; base64 and base64url decoded', () => {
    const secret = randomBytes(48);
    assert.deepEqual(hmacMaterial(Buffer.concat([secret, Buffer.from('\n')]), 'raw').material, secret);
    assert.deepEqual(hmacMaterial(Buffer.from(`${secret.toString('base64')}\n`), 'base64').material, secret);
    assert.deepEqual(hmacMaterial(Buffer.from(secret.toString('base64url')), 'base64url').material, secret);
    const text = 'a-secret-string-that-the-app-used-as-it-is-0123456789';
    const raw = hmacMaterial(Buffer.from(text), 'raw', 'HS512');
    assert.equal(raw.material.toString('latin1'), text);
    assert.equal(raw.alg, 'HS512');
    assert.equal(raw.type, 'hmac');
  });

  test('a secret shorter than 32 bytes is refused (16 bytes; 31 bytes), saying why and what to do instead', () => {
    refused(() => hmacMaterial(randomBytes(16), 'raw'), /16 bytes \(128 bits\)/, /at least 32 bytes \(256 bits\)/, /signet keys create NAME --type hmac/);
    refused(() => hmacMaterial(Buffer.from(randomBytes(MIN_HMAC_SECRET_BYTES - 1).toString('base64')), 'base64'), /31 bytes/);
    assert.equal(hmacMaterial(randomBytes(MIN_HMAC_SECRET_BYTES), 'raw').material.length, 32);
  });

  test('a raw secret that only reaches 32 bytes base64-encoded hints at --hmac-encoding; bad base64 is refused', () => {
    refused(() => hmacMaterial(Buffer.from('c2hvcnQ='), 'raw'), /--hmac-encoding base64/);
    refused(() => hmacMaterial(Buffer.from('not base64 at all!'), 'base64'), /not base64/);
    refused(() => hmacMaterial(randomBytes(40), 'raw', 'RS256'), /--alg RS256 does not fit/);
  });
});

describe('key file mode', () => {
  test('readable by group or others: refused with the chmod to run, unless --force', () => {
    refused(() => checkKeyFileMode('/k.pem', 0o100644, false), /readable by its group and others/, /mode 644/, /chmod 600 \/k\.pem/, /--force/);
    refused(() => checkKeyFileMode('/k.pem', 0o100604, false), /readable by others/);
    refused(() => checkKeyFileMode('/k.pem', 0o100640, false), /readable by its group \(/);
    checkKeyFileMode('/k.pem', 0o100644, true);
    checkKeyFileMode('/k.pem', 0o100600, false);
    checkKeyFileMode('/k.pem', 0o100400, false);
  });
});
