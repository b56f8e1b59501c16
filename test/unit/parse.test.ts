import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TokenInvalidError } from '../../src/errors.ts';
import { MAX_TOKEN_LENGTH, decodePayload, parseToken } from '../../src/jwt/parse.ts';

const seg = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const SIG = Buffer.from('signature-bytes').toString('base64url');
const PAYLOAD = seg({ sub: 'alice', exp: 2_000_000_000 });

function token(header: unknown, payload = PAYLOAD, signature = SIG): string {
  return `${seg(header)}.${payload}.${signature}`;
}

function refused(text: string, pattern: RegExp): void {
  assert.throws(() => parseToken(text), (error: unknown) => {
    assert.ok(error instanceof TokenInvalidError, `expected TokenInvalidError, got ${String(error)}`);
    assert.equal(error.status, 401);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('parseToken accepts', () => {
  test('a well-formed compact JWS and returns header, signing input, payload segment and signature', () => {
    const header = { alg: 'ES256', kid: 'k1', typ: 'JWT' };
    const text = token(header);
    const parsed = parseToken(text);
    assert.deepEqual(parsed.header, header);
    assert.equal(parsed.signingInput, `${seg(header)}.${PAYLOAD}`);
    assert.equal(parsed.payloadSegment, PAYLOAD);
    assert.equal(parsed.signature, SIG);
    assert.deepEqual(decodePayload(parsed.payloadSegment), { sub: 'alice', exp: 2_000_000_000 });
  });

  test('cty other than JWT and unknown harmless header members', () => {
    assert.doesNotThrow(() => parseToken(token({ alg: 'RS256', kid: 'k', cty: 'json', x: 1 })));
  });

  test('a token of exactly the maximum length', () => {
    // A kid of the length that leaves the signature a canonical base64url length (not 1 mod 4).
    let kid = 'k';
    while ((MAX_TOKEN_LENGTH - `${seg({ alg: 'HS256', kid })}.${PAYLOAD}.`.length) % 4 === 1) kid += 'k';
    const prefix = `${seg({ alg: 'HS256', kid })}.${PAYLOAD}.`;
    const text = prefix + 'A'.repeat(MAX_TOKEN_LENGTH - prefix.length);
    assert.equal(text.length, MAX_TOKEN_LENGTH);
    assert.doesNotThrow(() => parseToken(text));
  });
});

describe('parseToken refuses', () => {
  test('alg none, whatever the kid', () => {
    refused(token({ alg: 'none', kid: 'k' }), /header alg: "none" is never accepted/);
    refused(token({ alg: 'none', kid: 'k', typ: 'JWT' }), /"none"/);
    // The unsecured form (empty signature) is refused too.
    refused(`${seg({ alg: 'none', kid: 'k' })}.${PAYLOAD}.`, /base64url/);
  });

  test('a missing or non-string alg', () => {
    refused(token({ kid: 'k' }), /header alg: missing/);
    refused(token({ alg: 256, kid: 'k' }), /header alg/);
  });

  for (const name of ['jku', 'x5u', 'jwk', 'x5c']) {
    test(`the ${name} header (keys chosen by the token)`, () => {
      refused(token({ alg: 'RS256', kid: 'k', [name]: name === 'jwk' ? { kty: 'oct', k: 'AA' } : 'https://attacker.example/keys' }), new RegExp(`header ${name}`));
    });
  }

  test('crit, whatever it lists', () => {
    refused(token({ alg: 'ES256', kid: 'k', crit: ['exp'] }), /header crit/);
    refused(token({ alg: 'ES256', kid: 'k', crit: [] }), /header crit/);
  });

  test('b64 (unencoded payload), true or false', () => {
    refused(token({ alg: 'ES256', kid: 'k', b64: false }), /header b64/);
    refused(token({ alg: 'ES256', kid: 'k', b64: true }), /header b64/);
  });

  test('cty JWT (nested tokens), in any case', () => {
    for (const cty of ['JWT', 'jwt', 'Jwt']) refused(token({ alg: 'ES256', kid: 'k', cty }), /header cty/);
  });

  test('a JWE (five parts)', () => {
    refused('eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d', /JWE/);
  });

  test('anything that is not three parts', () => {
    for (const text of ['', 'abc', 'a.b', 'a.b.c.d', 'a.b.c.d.e.f']) refused(text, /compact JWS/);
  });

  test('empty segments, padding and characters outside base64url', () => {
    const h = seg({ alg: 'ES256', kid: 'k' });
    refused(`${h}..${SIG}`, /base64url/);
    refused(`${h}.${PAYLOAD}.`, /base64url/);
    refused(`.${PAYLOAD}.${SIG}`, /base64url/);
    refused(`${h}.${PAYLOAD}.${SIG}=`, /base64url/);
    refused(`${h}.${PAYLOAD}.ab+c`, /base64url/);
    refused(`${h}.${PAYLOAD}.ab/c`, /base64url/);
    refused(`${h}.${PAYLOAD} .${SIG}`, /base64url/);
  });

  test('a header that is not JSON', () => {
    refused(`${seg('not json')}.${PAYLOAD}.${SIG}`, /header is not base64url-encoded JSON/);
    refused(`${seg('{"alg":"ES256"')}.${PAYLOAD}.${SIG}`, /header is not base64url-encoded JSON/);
  });

  test('a header that is JSON but not an object', () => {
    for (const value of ['[1,2]', 'null', '"ES256"', '42', 'true']) refused(`${seg(value)}.${PAYLOAD}.${SIG}`, /header is not a JSON object/);
  });

  test('an empty or non-string kid; a missing kid parses (the verifier refuses it unless a key has accept_missing_kid)', () => {
    assert.equal(parseToken(token({ alg: 'ES256' })).header.kid, undefined);
    refused(token({ alg: 'ES256', kid: '' }), /header kid/);
    refused(token({ alg: 'ES256', kid: 7 }), /header kid/);
  });

  test('a token longer than the maximum, before decoding anything', () => {
    const prefix = `${seg({ alg: 'HS256', kid: 'k' })}.${PAYLOAD}.`;
    refused(prefix + 'A'.repeat(MAX_TOKEN_LENGTH - prefix.length + 1), new RegExp(`longer than ${MAX_TOKEN_LENGTH}`));
    refused('x'.repeat(1_000_000), /longer than/);
  });

  test('refusals never quote the token content', () => {
    const text = token({ alg: 'ES256', kid: 'k', jku: 'https://secret-host.example' });
    assert.throws(() => parseToken(text), (error: Error) => !error.message.includes('secret-host') && !error.message.includes(text));
  });
});

describe('decodePayload', () => {
  test('returns the claims object', () => {
    assert.deepEqual(decodePayload(seg({ a: 1 })), { a: 1 });
  });

  test('refuses a payload that is not a JSON object', () => {
    for (const value of ['[]', '"x"', 'null', '1']) {
      assert.throws(() => decodePayload(seg(value)), (error: unknown) => error instanceof TokenInvalidError && /payload is not a JSON object/.test(error.message));
    }
    assert.throws(() => decodePayload(seg('{')), (error: unknown) => error instanceof TokenInvalidError && /payload is not base64url-encoded JSON/.test(error.message));
  });

  test('refuses invalid UTF-8 instead of reading it as U+FFFD (two byte strings must not read as the same claims)', () => {
    const bytes = Buffer.concat([Buffer.from('{"sub":"'), Buffer.from([0xff]), Buffer.from('"}')]);
    assert.throws(() => decodePayload(bytes.toString('base64url')), (error: unknown) => error instanceof TokenInvalidError && /payload is not base64url-encoded JSON/.test(error.message));
    assert.deepEqual(decodePayload(Buffer.from('{"sub":"é"}').toString('base64url')), { sub: 'é' });
  });
});
