import assert from 'node:assert/strict';
import { constants, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { CompactSign } from 'jose';
import type { JwsAlg } from '../../src/jwt/algorithms.ts';
import { isHighS, keyFitsAlg, lowS, verifySignature } from '../../src/jwt/signature.ts';

const ec = (namedCurve: string) => generateKeyPairSync('ec', { namedCurve });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const KEYS: Record<JwsAlg, { privateKey: KeyObject; publicKey: KeyObject } | undefined> = {
  EdDSA: ed, Ed25519: ed, ES256: ec('P-256'), ES384: ec('P-384'), ES512: ec('P-521'),
  RS256: rsa, RS384: rsa, RS512: rsa, PS256: rsa, PS384: rsa, PS512: rsa, HS256: undefined, HS384: undefined, HS512: undefined,
};

async function jws(alg: JwsAlg, key: KeyObject): Promise<{ input: string; signature: Buffer }> {
  const token = await new CompactSign(new TextEncoder().encode('{"sub":"x"}')).setProtectedHeader({ alg, kid: 'k' }).sign(key);
  const [h, p, s] = token.split('.');
  return { input: `${h}.${p}`, signature: Buffer.from(s!, 'base64url') };
}

for (const alg of ['EdDSA', 'Ed25519', 'ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const) {
  test(`${alg}: a jose-made signature verifies; a changed input or signature does not`, async () => {
    const { privateKey, publicKey } = KEYS[alg]!;
    assert.equal(keyFitsAlg(alg, publicKey), true);
    const { input, signature: made } = await jws(alg, privateKey);
    // jose does not normalise ECDSA signatures; Signet accepts only their low-S form (tested below).
    const signature = lowS(alg, made);
    assert.equal(verifySignature(alg, publicKey, input, signature), true);
    assert.equal(verifySignature(alg, publicKey, `${input}x`, signature), false);
    const flipped = Buffer.from(signature);
    flipped[0]! ^= 1;
    assert.equal(verifySignature(alg, publicKey, input, flipped), false);
    assert.equal(verifySignature(alg, publicKey, input, signature.subarray(1)), false);
  });
}

test('RS256 and PS256 signatures of the same key are not interchangeable', async () => {
  const rs = await jws('RS256', rsa.privateKey);
  assert.equal(verifySignature('PS256', rsa.publicKey, rs.input, rs.signature), false);
  const ps = await jws('PS256', rsa.privateKey);
  assert.equal(verifySignature('RS256', rsa.publicKey, ps.input, ps.signature), false);
});

test('PS256 requires the salt to be as long as the hash (Vault\'s default "auto" salt is refused)', () => {
  const input = 'a.b';
  const longSalt = sign('sha256', Buffer.from(input), { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN });
  assert.equal(verifySignature('PS256', rsa.publicKey, input, longSalt), false);
  const hashSalt = sign('sha256', Buffer.from(input), { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  assert.equal(verifySignature('PS256', rsa.publicKey, input, hashSalt), true);
});

test('ECDSA: DER-encoded signatures (Vault\'s asn1 default) are refused; only R||S of the curve\'s length', () => {
  const { privateKey, publicKey } = KEYS.ES256!;
  const der = sign('sha256', Buffer.from('a.b'), privateKey);
  assert.equal(verifySignature('ES256', publicKey, 'a.b', der), false);
  const p1363 = lowS('ES256', sign('sha256', Buffer.from('a.b'), { key: privateKey, dsaEncoding: 'ieee-p1363' }));
  assert.equal(verifySignature('ES256', publicKey, 'a.b', p1363), true);
  assert.equal(verifySignature('ES384', publicKey, 'a.b', p1363), false, 'ES256 signature checked as ES384');
});

test('keyFitsAlg: the key type, curve and size must fit the alg', () => {
  assert.equal(keyFitsAlg('ES256', KEYS.ES384!.publicKey), false);
  assert.equal(keyFitsAlg('ES256', rsa.publicKey), false);
  assert.equal(keyFitsAlg('RS256', ed.publicKey), false);
  assert.equal(keyFitsAlg('EdDSA', KEYS.ES256!.publicKey), false);
  assert.equal(keyFitsAlg('RS256', generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey), false);
  assert.equal(keyFitsAlg('HS256', rsa.publicKey), false);
  assert.equal(keyFitsAlg('RS256', rsa.privateKey), false, 'only public keys');
  assert.equal(verifySignature('HS256', rsa.publicKey, 'a.b', Buffer.alloc(32)), false);
});

// RFC 8725 / malleability: (r, s) and (r, n - s) both satisfy ECDSA; Signet answers and accepts only low-S.
for (const alg of ['ES256', 'ES384', 'ES512'] as const) {
  test(`${alg}: the high-S twin of a signature is refused, its low-S form verifies, and lowS maps each to the same bytes`, async () => {
    const { privateKey, publicKey } = KEYS[alg]!;
    let highSeen = 0;
    let lowSeen = 0;
    for (let i = 0; i < 40 && (highSeen === 0 || lowSeen === 0); i++) {
      const { input, signature } = await jws(alg, privateKey);
      const low = lowS(alg, signature);
      assert.equal(isHighS(alg, low), false);
      assert.equal(verifySignature(alg, publicKey, input, low), true);
      // The twin: the same r with n - s. Exactly one of (signature, twin) is high-S, and it is refused.
      const half = low.length / 2;
      const order = { ES256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
        ES384: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
        ES512: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n }[alg];
      const s = BigInt(`0x${low.subarray(half).toString('hex')}`);
      const twin = Buffer.concat([low.subarray(0, half), Buffer.from((order - s).toString(16).padStart(half * 2, '0'), 'hex')]);
      assert.equal(isHighS(alg, twin), true);
      assert.equal(verifySignature(alg, publicKey, input, twin), false, 'the high-S twin is refused');
      assert.deepEqual(lowS(alg, twin), low, 'normalising the twin gives the low-S form');
      if (isHighS(alg, signature)) highSeen++;
      else lowSeen++;
    }
    assert.ok(highSeen > 0 && lowSeen > 0, 'both forms came out of a real signer');
  });
}

test('RSA: a signature with its leading zero byte dropped (OpenSSL accepts it for PSS) is refused: one spelling per token', () => {
  // Find a PS256/RS256 signature that starts with 0x00 (1 in 256), then drop that byte.
  for (const alg of ['RS256', 'PS256'] as const) {
    let found = false;
    for (let i = 0; i < 4000 && !found; i++) {
      const input = `a.${i}`;
      const full = alg === 'RS256' ? sign('sha256', Buffer.from(input), rsa.privateKey)
        : sign('sha256', Buffer.from(input), { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
      if (full[0] !== 0) continue;
      found = true;
      assert.equal(verifySignature(alg, rsa.publicKey, input, full), true);
      assert.equal(verifySignature(alg, rsa.publicKey, input, full.subarray(1)), false);
    }
    assert.ok(found, `a ${alg} signature starting with 0x00 within 4000 tries`);
  }
});


test('lowS: n − s computed on the bytes equals the big-integer result, borrows across every byte included', () => {
  const orders = { ES256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    ES384: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    ES512: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n };
  for (const [alg, n] of Object.entries(orders) as Array<[JwsAlg, bigint]>) {
    const half = { ES256: 32, ES384: 48, ES512: 66 }[alg as 'ES256']!;
    const bytes = (v: bigint) => Buffer.from(v.toString(16).padStart(half * 2, '0'), 'hex');
    const r = Buffer.alloc(half, 7);
    // The largest s, the smallest high s, and random high ones.
    const samples = [n - 1n, (n >> 1n) + 1n, ...Array.from({ length: 200 }, () => (n >> 1n) + 1n + BigInt(`0x${randomBytes(half).toString('hex')}`) % (n >> 1n))];
    for (const s of samples) {
      const low = lowS(alg, Buffer.concat([r, bytes(s)]));
      assert.deepEqual(low, Buffer.concat([r, bytes(n - s)]), `${alg} s=${s.toString(16)}`);
    }
  }
});
