import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ALL_ALGS, algSpec, algsForKeyType, isJwsAlg, isSymmetric, isTransitKeyType, resolveAlg,
  type JwsAlg, type TransitKeyType,
} from '../../src/jwt/algorithms.ts';

const RSA_ALGS: JwsAlg[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const HMAC_ALGS: JwsAlg[] = ['HS256', 'HS384', 'HS512'];

/** DESIGN §4: every Transit key type, the algs it produces (default first), and whether it is symmetric. */
const TABLE: Array<{ type: TransitKeyType; algs: JwsAlg[]; symmetric: boolean }> = [
  { type: 'ed25519', algs: ['EdDSA', 'Ed25519'], symmetric: false },
  { type: 'ecdsa-p256', algs: ['ES256'], symmetric: false },
  { type: 'ecdsa-p384', algs: ['ES384'], symmetric: false },
  { type: 'ecdsa-p521', algs: ['ES512'], symmetric: false },
  { type: 'rsa-2048', algs: RSA_ALGS, symmetric: false },
  { type: 'rsa-3072', algs: RSA_ALGS, symmetric: false },
  { type: 'rsa-4096', algs: RSA_ALGS, symmetric: false },
  { type: 'hmac', algs: HMAC_ALGS, symmetric: true },
  { type: 'aes128-gcm96', algs: HMAC_ALGS, symmetric: true },
  { type: 'aes256-gcm96', algs: HMAC_ALGS, symmetric: true },
  { type: 'chacha20-poly1305', algs: HMAC_ALGS, symmetric: true },
];

describe('key type → algs table', () => {
  for (const { type, algs, symmetric } of TABLE) {
    test(`${type} produces ${algs.join(', ')} (default ${algs[0]})`, () => {
      assert.ok(isTransitKeyType(type));
      assert.deepEqual([...algsForKeyType(type)], algs);
      assert.equal(isSymmetric(type), symmetric);
      assert.deepEqual(resolveAlg(type, undefined), { alg: algs[0] });
      for (const alg of algs) assert.deepEqual(resolveAlg(type, alg), { alg });
    });
  }

  test('key types that cannot sign JWTs are not Transit key types Signet knows', () => {
    for (const type of ['rsa-1024', 'ecdsa-p224', 'managed_key', 'aes256', 'RSA-2048', '', 'ed448']) {
      assert.equal(isTransitKeyType(type), false, type);
    }
    // Object prototype names must not pass as key types.
    assert.equal(isTransitKeyType('toString'), false);
    assert.equal(isTransitKeyType('__proto__'), false);
  });

  test('ALL_ALGS is exactly the union of the algs of every key type', () => {
    const union = new Set(TABLE.flatMap((row) => row.algs));
    assert.deepEqual(new Set(ALL_ALGS), union);
    assert.equal(ALL_ALGS.length, union.size, 'no alg listed twice');
  });

  test('isJwsAlg accepts the table and refuses none, lowercase and unknown algs', () => {
    for (const alg of ALL_ALGS) assert.ok(isJwsAlg(alg), alg);
    for (const alg of ['none', 'None', 'es256', 'rs256', 'HS1', 'ES256K', 'EdDSA ', 'RSA-OAEP', '']) {
      assert.equal(isJwsAlg(alg), false, alg);
    }
  });
});

describe('algSpec: the Transit parameters that make a valid JWS signature', () => {
  const HASHES = { '256': 'sha2-256', '384': 'sha2-384', '512': 'sha2-512' } as const;

  for (const bits of ['256', '384', '512'] as const) {
    test(`ES${bits}: transit/sign with ${HASHES[bits]} and marshaling_algorithm=jws (raw r||s, not ASN.1)`, () => {
      const spec = algSpec(`ES${bits}`);
      assert.equal(spec.alg, `ES${bits}`);
      assert.equal(spec.operation, 'sign');
      assert.equal(spec.hash, HASHES[bits]);
      assert.deepEqual({ ...spec.signParams }, { marshaling_algorithm: 'jws' });
      assert.equal(spec.publishable, true);
    });

    test(`RS${bits}: transit/sign with ${HASHES[bits]}, signature_algorithm=pkcs1v15, jws marshaling`, () => {
      const spec = algSpec(`RS${bits}`);
      assert.equal(spec.operation, 'sign');
      assert.equal(spec.hash, HASHES[bits]);
      assert.deepEqual({ ...spec.signParams }, { marshaling_algorithm: 'jws', signature_algorithm: 'pkcs1v15' });
      assert.equal(spec.publishable, true);
    });

    test(`PS${bits}: transit/sign with ${HASHES[bits]}, signature_algorithm=pss and salt_length=hash`, () => {
      const spec = algSpec(`PS${bits}`);
      assert.equal(spec.operation, 'sign');
      assert.equal(spec.hash, HASHES[bits]);
      // Vault's default salt_length "auto" (maximum) is rejected by JWS verifiers, which require the hash length.
      assert.deepEqual({ ...spec.signParams }, { marshaling_algorithm: 'jws', signature_algorithm: 'pss', salt_length: 'hash' });
      assert.equal(spec.publishable, true);
    });

    test(`HS${bits}: transit/hmac with ${HASHES[bits]}, never published`, () => {
      const spec = algSpec(`HS${bits}`);
      assert.equal(spec.operation, 'hmac');
      assert.equal(spec.hash, HASHES[bits]);
      // transit/hmac takes `algorithm`, not sign parameters; the hash travels in the path.
      assert.equal(spec.signParams.hash_algorithm, undefined);
      assert.equal(spec.signParams.signature_algorithm, undefined);
      assert.equal(spec.publishable, false);
    });
  }

  for (const alg of ['EdDSA', 'Ed25519'] as const) {
    test(`${alg}: pure Ed25519, no hash and no prehashing`, () => {
      const spec = algSpec(alg);
      assert.equal(spec.alg, alg);
      assert.equal(spec.operation, 'sign');
      assert.equal(spec.hash, undefined);
      assert.equal(spec.signParams.hash_algorithm, undefined);
      assert.equal(spec.signParams.prehashed, undefined);
      assert.equal(spec.signParams.signature_algorithm, undefined);
      assert.equal(spec.publishable, true);
    });
  }

  test('every transit/sign alg sends marshaling_algorithm=jws (Vault defaults to asn1)', () => {
    for (const alg of ALL_ALGS) {
      const spec = algSpec(alg);
      if (spec.operation === 'sign') assert.equal(spec.signParams.marshaling_algorithm, 'jws', alg);
    }
  });

  test('the hash suffix always matches the alg digest size', () => {
    for (const alg of ALL_ALGS) {
      const spec = algSpec(alg);
      const bits = /(256|384|512)$/.exec(alg)?.[1];
      assert.equal(spec.hash, bits ? `sha2-${bits}` : undefined, alg);
      assert.equal(spec.alg, alg);
    }
  });

  test('only HS algs use transit/hmac, and only they are unpublishable', () => {
    for (const alg of ALL_ALGS) {
      const spec = algSpec(alg);
      const hs = alg.startsWith('HS');
      assert.equal(spec.operation, hs ? 'hmac' : 'sign', alg);
      assert.equal(spec.publishable, !hs, alg);
    }
  });
});

describe('resolveAlg refusals', () => {
  const misfits: Array<[TransitKeyType, JwsAlg]> = [
    ['ecdsa-p256', 'ES384'],
    ['ecdsa-p384', 'ES256'],
    ['ecdsa-p521', 'ES256'],
    ['ed25519', 'ES256'],
    ['rsa-2048', 'EdDSA'],
    ['rsa-4096', 'ES512'],
    ['hmac', 'RS256'],
    ['aes256-gcm96', 'EdDSA'],
    ['ecdsa-p256', 'HS256'],
    ['ed25519', 'HS512'],
  ];
  for (const [type, alg] of misfits) {
    test(`${alg} on a ${type} key is refused with a message naming both and what fits`, () => {
      const result = resolveAlg(type, alg);
      assert.ok('error' in result, 'expected an error');
      assert.match(result.error, new RegExp(`\\b${alg}\\b`));
      assert.ok(result.error.includes(type), result.error);
      for (const fit of algsForKeyType(type)) assert.ok(result.error.includes(fit), `names ${fit}: ${result.error}`);
    });
  }
});
