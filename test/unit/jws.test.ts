import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { base64url, encodeHeader, encodePayload } from '../../src/jwt/jws.ts';

const B64URL = /^[A-Za-z0-9_-]*$/;

describe('base64url', () => {
  test('RFC 4648 §10 vectors, unpadded', () => {
    const vectors: Array<[string, string]> = [
      ['', ''], ['f', 'Zg'], ['fo', 'Zm8'], ['foo', 'Zm9v'], ['foob', 'Zm9vYg'], ['fooba', 'Zm9vYmE'], ['foobar', 'Zm9vYmFy'],
    ];
    for (const [input, output] of vectors) assert.equal(base64url(input), output);
  });

  test('uses - and _ instead of + and /, never padding', () => {
    assert.equal(base64url(new Uint8Array([0xfb, 0xff, 0xbf])), '-_-_');
    assert.equal(base64url(new Uint8Array([0xff])), '_w');
  });

  test('strings are encoded as UTF-8', () => {
    assert.equal(base64url('é'), Buffer.from([0xc3, 0xa9]).toString('base64url'));
    assert.equal(Buffer.from(base64url('日本語 ✓'), 'base64url').toString('utf8'), '日本語 ✓');
  });

  test('round trips any bytes and only ever uses the base64url alphabet', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const text = base64url(bytes);
      assert.match(text, B64URL);
      assert.deepEqual(new Uint8Array(Buffer.from(text, 'base64url')), bytes);
    }));
  });
});

describe('header and payload encoding', () => {
  test('the header is {alg, kid, typ} in that order, typ JWT by default', () => {
    const segment = encodeHeader('ES256', 'kid-1');
    assert.match(segment, B64URL);
    assert.equal(Buffer.from(segment, 'base64url').toString('utf8'), '{"alg":"ES256","kid":"kid-1","typ":"JWT"}');
  });

  test('a caller-chosen typ replaces JWT', () => {
    const decoded = JSON.parse(Buffer.from(encodeHeader('RS256', 'k', 'at+jwt'), 'base64url').toString('utf8'));
    assert.deepEqual(decoded, { alg: 'RS256', kid: 'k', typ: 'at+jwt' });
  });

  test('the same header inputs always give the same bytes', () => {
    assert.equal(encodeHeader('EdDSA', 'abc'), encodeHeader('EdDSA', 'abc'));
    assert.notEqual(encodeHeader('EdDSA', 'abc'), encodeHeader('EdDSA', 'abd'));
  });

  test('the payload decodes back to the same claims, non-ASCII included', () => {
    const claims = { sub: 'Zoë', n: 1, nested: { a: [1, 'two', null] } };
    const segment = encodePayload(claims);
    assert.match(segment, B64URL);
    assert.deepEqual(JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')), claims);
  });
});
