// Transit's wire formats (src/vault/wire.ts): the input Transit signs, and its signatures as JWS segments. That
// Vault's signatures over the digests verify as JWS is tested against a real Vault, for every alg, in core.test.ts.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { VaultResponseError } from '../../src/errors.ts';
import { algSpec } from '../../src/jwt/algorithms.ts';
import { encodeHeader, encodePayload } from '../../src/jwt/jws.ts';
import { jwsSignatureFromVault, transitInput, transitSignInput, vaultHmacFromJws } from '../../src/vault/wire.ts';

const B64URL = /^[A-Za-z0-9_-]*$/;

describe('transitSignInput', () => {
  const signingInput = `${encodeHeader('ES256', 'k')}.${encodePayload({ sub: 'x', scope: 'read' })}`;
  test('ECDSA and RSA send the digest of the signing input (prehashed), of the alg\'s hash', () => {
    for (const [alg, hash] of [['ES256', 'sha256'], ['ES384', 'sha384'], ['ES512', 'sha512'], ['RS256', 'sha256'], ['PS384', 'sha384'], ['RS512', 'sha512']] as const) {
      const spec = algSpec(alg);
      assert.equal(spec.prehash, hash, alg);
      assert.equal(transitSignInput(signingInput, spec), createHash(hash).update(signingInput, 'ascii').digest('base64'), alg);
    }
  });
  test('Ed25519 signs the whole message, so EdDSA sends the signing input itself', () => {
    assert.equal(algSpec('EdDSA').prehash, undefined);
    assert.equal(transitSignInput(signingInput, algSpec('EdDSA')), transitInput(signingInput));
  });
});

describe('transitInput', () => {
  test('is standard base64 (with + / and padding) of the ASCII signing input', () => {
    // 'header.payload' segments are base64url, so the signing input is ASCII.
    const signingInput = `${encodeHeader('ES256', 'k')}.${encodePayload({ sub: 'x' })}`;
    const input = transitInput(signingInput);
    assert.match(input, /^[A-Za-z0-9+/]*={0,2}$/);
    assert.equal(input.length % 4, 0, 'padded');
    assert.equal(Buffer.from(input, 'base64').toString('ascii'), signingInput);
  });

  test('produces the standard alphabet where base64url would differ (Vault rejects URL-safe input)', () => {
    // '>>>' is 0x3e3e3e → "Pj4+" in standard base64, "Pj4-" in base64url; '???' → "Pz8/".
    assert.equal(transitInput('>>>'), 'Pj4+');
    assert.equal(transitInput('???'), 'Pz8/');
    assert.equal(transitInput('a.b'), 'YS5i');
    assert.equal(transitInput('ab'), 'YWI=');
  });

  test('round trips every ASCII signing input', () => {
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom(...'ABCxyz019-_.'), maxLength: 300 }), (text) => {
      assert.equal(Buffer.from(transitInput(text), 'base64').toString('ascii'), text);
    }));
  });
});

describe('jwsSignatureFromVault', () => {
  test('strips the vault:vN: prefix of the requested version', () => {
    assert.equal(jwsSignatureFromVault('vault:v1:abc_-DEF', 1), 'abc_-DEF');
    assert.equal(jwsSignatureFromVault('vault:v12:xyz', 12), 'xyz');
  });

  test('converts standard base64 (Ed25519, HMAC) to unpadded base64url', () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0x00, 0xfe]);
    const standard = bytes.toString('base64');
    assert.match(standard, /[+/=]/, 'the vector must exercise + / and padding');
    const converted = jwsSignatureFromVault(`vault:v3:${standard}`, 3);
    assert.equal(converted, bytes.toString('base64url'));
    assert.doesNotMatch(converted, /[+/=]/);
  });

  test('leaves base64url (marshaling_algorithm=jws) untouched', () => {
    const sig = Buffer.from(Array.from({ length: 64 }, (_, i) => i * 4)).toString('base64url');
    assert.equal(jwsSignatureFromVault(`vault:v2:${sig}`, 2), sig);
  });

  test('every signature, standard or url-safe, padded or not, yields the same bytes as base64url', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 600 }), fc.integer({ min: 1, max: 10_000 }), (bytes, version) => {
      const buf = Buffer.from(bytes);
      for (const encoded of [buf.toString('base64'), buf.toString('base64url')]) {
        const out = jwsSignatureFromVault(`vault:v${version}:${encoded}`, version);
        assert.match(out, B64URL);
        assert.equal(out, buf.toString('base64url'));
      }
    }));
  });

  test('refuses a signature made with another version than the kid names', () => {
    assert.throws(() => jwsSignatureFromVault('vault:v2:abc', 1), (error: unknown) => {
      assert.ok(error instanceof VaultResponseError);
      assert.equal(error.status, 502);
      assert.match(error.message, /version 2/);
      assert.match(error.message, /version 1/);
      return true;
    });
    assert.throws(() => jwsSignatureFromVault('vault:v1:abc', 11), VaultResponseError);
    assert.throws(() => jwsSignatureFromVault('vault:v11:abc', 1), VaultResponseError);
  });

  test('refuses a signature without the vault:vN: prefix', () => {
    for (const text of ['abc', '', 'vault:abc', 'vault:v:abc', 'vault:vx:abc', 'vault:v1:', 'v1:abc', 'Vault:v1:abc', ' vault:v1:abc', 'vault:v-1:abc']) {
      assert.throws(() => jwsSignatureFromVault(text, 1), (error: unknown) => {
        assert.ok(error instanceof VaultResponseError, text);
        assert.match(error.message, /vault:vN:/);
        return true;
      }, JSON.stringify(text));
    }
  });
});

describe('vaultHmacFromJws', () => {
  test('gives Vault the vault:vN: prefix and standard base64', () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0x01]);
    assert.equal(vaultHmacFromJws(bytes.toString('base64url'), 7), `vault:v7:${bytes.toString('base64')}`);
  });

  test('round trips with jwsSignatureFromVault for any HMAC and version', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.integer({ min: 1, max: 1_000_000 }), (bytes, version) => {
      const jws = Buffer.from(bytes).toString('base64url');
      const vault = vaultHmacFromJws(jws, version);
      assert.match(vault, /^vault:v\d+:[A-Za-z0-9+/]+={0,2}$/);
      assert.equal(jwsSignatureFromVault(vault, version), jws);
    }));
  });
});
