// Property-based tests (fast-check) against a real Signet and a real Vault.
//   Sign: arbitrary request bodies, near-valid and hostile, at every sign route: never a 5xx, never a crash,
//   never a token for a refused request; a 200 always carries a token that verifies, with the caller's claims
//   as sent and the registered claims as Signet's policy sets them.
//   Verify: arbitrary mutations of valid tokens (flipped characters, truncation, swapped segments, re-encoded
//   headers with other algs or kids, forbidden headers, changed payloads, and combinations): every one refused
//   with 401 (or 400 for schema-level issues), and the server still answers afterwards.
// numRuns is kept modest so each property runs in seconds; fast-check prints the seed of a failure to replay it.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { startSignet, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const ISSUER = 'https://issuer.test';
const RUNS = Number(process.env.SIGNET_PROPERTY_RUNS ?? 200);
const JWT_LIKE = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/;
const REGISTERED = ['iss', 'iat', 'nbf', 'exp', 'jti'];

/** POSTs a raw body; answers status, parsed body (if JSON) and text. */
async function postRaw(signet: TestSignet, path: string, text: string): Promise<{ status: number; body: any; text: string }> {
  const response = await fetch(`${signet.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
  const body = await response.text();
  let parsed: unknown;
  try { parsed = body ? JSON.parse(body) : undefined; } catch { parsed = undefined; }
  return { status: response.status, body: parsed, text: body };
}

describe('property: sign request bodies', () => {
  let vault: TestVault;
  let signet: TestSignet;
  let jwks: JSONWebKeySet;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
    await vault.createKey('open', 'ed25519');
    await vault.createKey('hs', 'hmac');
    signet = await startSignet(vault, [
      { name: 'app', audiences: ['api', 'web'], max_ttl: '1h' },
      { name: 'open', caller_claims: ['iss', 'iat', 'nbf', 'exp', 'jti'], max_ttl: '1h' },
      { name: 'hs', alg: 'HS256', max_ttl: '1h' },
    ], { config: { default_key: 'app', log_level: 'warn', clock_skew: '60s' } });
    await signet.ready(15_000);
    jwks = (await signet.get('/.well-known/jwks.json')).body;
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  const text = fc.string({ unit: 'binary', maxLength: 40 });
  const claimName = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...REGISTERED, 'aud', 'sub', 'scope', 'roles', '__proto__', 'constructor', 'toString', 'hasOwnProperty', '') },
    { weight: 2, arbitrary: text },
  );
  const numericDate = fc.oneof(
    fc.integer({ min: -10, max: 4_000_000_000 }),
    fc.constantFrom(Math.floor(Date.now() / 1000) + 60, Math.floor(Date.now() / 1000) - 60, 0, -1, 1.5, 1e300),
    fc.jsonValue(),
  );
  const claimValue = (name: string) => {
    if (name === 'aud') return fc.oneof(fc.constantFrom('api', 'web', 'evil', '', ['api'], ['api', 'web'], [], ['api', 'evil'], ['api', 7]), fc.jsonValue());
    if (name === 'iat' || name === 'nbf' || name === 'exp') return numericDate;
    return fc.jsonValue({ maxDepth: 10, stringUnit: 'binary' });
  };
  const claims = fc.oneof(
    { weight: 6, arbitrary: fc.array(claimName.chain((name) => claimValue(name).map((value) => [name, value] as const)), { maxLength: 12 })
      .map((entries) => { const o: Record<string, unknown> = {}; for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true }); return o; }) },
    { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 4 }), fc.constant(1), { minKeys: 60, maxKeys: 70 }) },
    { weight: 1, arbitrary: fc.jsonValue() },
    { weight: 1, arbitrary: fc.constant({ deep: [[[[[[[[['too deep']]]]]]]]] }) },
    { weight: 1, arbitrary: fc.constant({ long: 'x'.repeat(4097) }) },
  );
  const ttl = fc.oneof(
    fc.constantFrom('5m', '1h', '90s', '2h', '0s', '0', '-1m', '1e3', '15m ', '', '1d', 'PT5M', '5 m', '9999999999999999999d'),
    fc.integer({ min: -5, max: 100_000 }), fc.constantFrom(0, 1, 1e20, 1.5, -0), text, fc.jsonValue(),
  );
  const headers = fc.oneof(
    fc.record({ typ: fc.oneof(fc.constantFrom('JWT', 'at+jwt', 'application/jwt', 'a b', ''), text) }, { requiredKeys: [] }),
    fc.record({ typ: fc.constant('JWT'), kid: fc.constant('mine'), alg: fc.constant('none') }, { requiredKeys: [] }),
    fc.jsonValue(),
  );
  // Plausible requests, so that a good share is signed and the token checks run.
  const plausibleName = fc.oneof(fc.constantFrom('sub', 'scope', 'roles', 'tenant', 'email'), fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }))
    .filter((name) => !REGISTERED.includes(name) && name !== 'aud' && name !== '__proto__' && name !== 'constructor');
  const plausible = fc.record({
    claims: fc.tuple(
      fc.dictionary(plausibleName, fc.jsonValue({ maxDepth: 4, stringUnit: 'binary' }), { maxKeys: 8 }),
      fc.option(fc.constantFrom('api', 'web', ['api', 'web']), { nil: undefined }),
      fc.oneof(
        { weight: 4, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.constantFrom<Record<string, unknown>>({ exp: Math.floor(Date.now() / 1000) + 600 }, { jti: 'id-1' }, { iss: 'https://other.test' }, { nbf: Math.floor(Date.now() / 1000) }) },
      ),
    ).map(([base, aud, registered]) => ({ ...base, ...(aud === undefined ? {} : { aud }), ...registered })),
    ttl: fc.option(fc.oneof(fc.constantFrom('5m', '1h', '90s', '2h'), fc.integer({ min: 1, max: 100_000 })), { nil: undefined }),
    headers: fc.option(fc.record({ typ: fc.constantFrom('JWT', 'at+jwt', 'application/jwt') }), { nil: undefined }),
  });
  const body = fc.oneof(
    { weight: 6, arbitrary: plausible },
    { weight: 4, arbitrary: fc.record({ claims, ttl, headers, extra: fc.jsonValue() }, { requiredKeys: ['claims'] }) },
    { weight: 1, arbitrary: fc.record({ claims, ttl, headers }, { requiredKeys: [] }) },
    { weight: 1, arbitrary: fc.jsonValue() },
  ).map((value) => JSON.stringify(value) ?? 'null');
  const rawBody = fc.oneof({ weight: 9, arbitrary: body }, { weight: 1, arbitrary: fc.oneof(text, body.map((b) => b.slice(0, -1)), body.map((b) => `${b}${b}`)) });
  const path = fc.oneof(
    { weight: 9, arbitrary: fc.constantFrom('/v1/sign', '/v1/sign/app', '/v1/sign/open', '/v1/sign/hs') },
    { weight: 1, arbitrary: fc.constantFrom('/v1/sign/nope', '/v1/sign/bad%20name', '/v1/sign/%2e%2e', '/v1/sign/app/', '/v1/sign/app?x=1') },
  );

  test(`${RUNS} arbitrary bodies: never a 5xx, never a token for a refusal, every token verifies with the claims sent`, async () => {
    const seen = { ok: 0, refused: 0 };
    await fc.assert(fc.asyncProperty(path, rawBody, async (route, raw) => {
      const response = await postRaw(signet, route, raw);
      assert.ok(response.status < 500, `${route} ${raw.slice(0, 200)} → ${response.status} ${response.text}`);
      if (response.status !== 200) {
        seen.refused++;
        assert.ok(Array.isArray(response.body?.errors) && response.body.errors.length > 0 && response.body.errors.every((e: unknown) => typeof e === 'string'), response.text);
        assert.ok(!('token' in response.body), 'a refusal carries no token');
        assert.doesNotMatch(response.text, JWT_LIKE, 'a refusal carries nothing that looks like a JWT');
        return;
      }
      seen.ok++;
      const { token, alg, key, expires_at: expiresAt } = response.body;
      assert.equal(typeof token, 'string');
      let payload: Record<string, unknown>;
      if (alg === 'HS256') {
        const verified = await signet.post('/v1/verify', { token });
        assert.equal(verified.status, 200, JSON.stringify(verified.body));
        payload = verified.body.claims;
      } else {
        payload = (await jwtVerify(token, createLocalJWKSet(jwks), { algorithms: [alg], clockTolerance: 60 })).payload as Record<string, unknown>;
      }
      // What the caller sent arrives as sent; what Signet sets follows the key's policy.
      const sent = (JSON.parse(raw) as { claims: Record<string, unknown> }).claims;
      for (const [name, value] of Object.entries(sent)) {
        if (!REGISTERED.includes(name)) assert.deepEqual(payload[name], value, `claim ${name}`);
      }
      const now = Math.floor(Date.now() / 1000);
      assert.equal(payload.exp, expiresAt);
      assert.ok((payload.exp as number) <= now + 3600 + 2, 'exp within max_ttl');
      assert.equal(typeof payload.jti, 'string');
      if (key !== 'open') {
        for (const name of REGISTERED) assert.ok(!Object.hasOwn(sent, name), `a key without caller_claims signed a caller's ${name}`);
        assert.equal(payload.iss, ISSUER);
      }
      // The default allowed_typ is [JWT]: no other typ is ever signed.
      assert.equal(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()).typ, 'JWT');
      if (key === 'app') {
        assert.ok(payload.aud !== undefined, 'a key with an audience allow-list never signs a token without aud');
        for (const aud of [payload.aud].flat()) assert.ok(['api', 'web'].includes(aud as string), 'aud within the allow-list');
      }
    }), { numRuns: RUNS });
    process.stderr.write(`properties: ${seen.ok} signed, ${seen.refused} refused of ${RUNS} arbitrary bodies` + '\n');
    // Not vacuous: both outcomes are reached. About 1 body in 9 is signed (19-29 of 200 in four runs, a fresh seed
    // each); the bound sits far below that (one CI run drew 8 of 200, under the former bound of RUNS / 20).
    assert.ok(seen.ok >= RUNS / 40 && seen.refused >= RUNS / 40, `the generator reaches both outcomes: ${JSON.stringify(seen)}`);
  });

  test('afterwards the server still answers and signs', async () => {
    assert.equal((await signet.get('/healthz')).status, 200);
    const signed = await signet.post('/v1/sign', { claims: { sub: 'after', aud: 'api' } });
    assert.equal(signed.status, 200, JSON.stringify(signed.body));
    assert.equal((await signet.post('/v1/verify', { token: signed.body.token })).status, 200);
  });
});

describe('property: mutated tokens at /v1/verify', () => {
  type Mutation = (token: string) => string;
  const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const b64json = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const decode = (segment: string): any => {
    try { return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')); } catch { return {}; }
  };
  const withHeader = (extra: Record<string, unknown>): Mutation => (t) => {
    const [h, p, s] = t.split('.') as [string, string, string];
    return `${b64json({ ...decode(h), ...extra })}.${p}.${s}`;
  };

  let vault: TestVault;
  let signet: TestSignet;
  const tokens: string[] = [];
  const kids: string[] = [];

  before(async () => {
    vault = await startVault();
    await vault.createKey('es', 'ecdsa-p256');
    await vault.createKey('ed', 'ed25519');
    await vault.createKey('rs', 'rsa-2048');
    await vault.createKey('hs', 'hmac');
    signet = await startSignet(vault, [
      { name: 'es' }, { name: 'ed' }, { name: 'rs', alg: 'PS256' }, { name: 'hs', alg: 'HS256' },
    ], { config: { log_level: 'warn' } });
    await signet.ready(15_000);
    for (const key of ['es', 'ed', 'rs', 'hs']) {
      const signed = await signet.post(`/v1/sign/${key}`, { claims: { sub: 'user-1', scope: 'read', admin: false }, ttl: '10m' });
      assert.equal(signed.status, 200);
      // Control: the unmutated token verifies.
      assert.equal((await signet.post('/v1/verify', { token: signed.body.token })).status, 200);
      tokens.push(signed.body.token);
      kids.push(signed.body.kid);
    }
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  /** The mutations; built in the test, once the real kids are known. */
  function mutations(): fc.Arbitrary<Mutation> {
    const flipChar = fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(...B64URL), fc.constantFrom('.', '=', '+', '/', ' ', 'é', '\u0000')))
      .map(([at, c]): Mutation => (t) => { const i = at % t.length; return t.slice(0, i) + c + t.slice(i + 1); });
    const truncate = fc.nat().map((n): Mutation => (t) => t.slice(0, n % t.length));
    const dropTail = fc.integer({ min: 1, max: 8 }).map((n): Mutation => (t) => t.slice(0, -n));
    const append = fc.string({ minLength: 1, maxLength: 8 }).map((s): Mutation => (t) => t + s);
    const swapSegments = fc.constantFrom([1, 0, 2], [0, 2, 1], [2, 1, 0], [1, 2, 0], [2, 0, 1], [0, 0, 2], [0, 1, 1], [0, 1], [0, 1, 2, 2], [0, 1, 2, 0, 1])
      .map((order): Mutation => (t) => { const s = t.split('.'); return order.map((i) => s[i] ?? '').join('.'); });
    const reHeader = fc.record({
      alg: fc.oneof(fc.constantFrom('none', 'HS256', 'HS384', 'HS512', 'RS256', 'PS256', 'PS384', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RSA-OAEP', ''), fc.string()),
      kid: fc.oneof(fc.constantFrom(...kids), fc.string()),
      typ: fc.constantFrom('JWT', 'at+jwt', 'jwt'),
    }, { requiredKeys: ['alg'] }).map(withHeader);
    const forbiddenHeader = fc.constantFrom<Record<string, unknown>>(
      { jku: 'https://attacker.example/jwks' }, { x5u: 'https://attacker.example/c.pem' }, { jwk: { kty: 'oct', k: 'AAAA' } }, { x5c: ['MIIB'] },
      { crit: ['exp'] }, { crit: [] }, { b64: false }, { b64: true }, { cty: 'JWT' }, { zip: 'DEF' }, { enc: 'A256GCM' },
    ).map(withHeader);
    const changeClaims = fc.oneof(
      fc.record({ name: fc.constantFrom('sub', 'scope', 'admin', 'exp', 'iss', 'aud', 'jti', 'new'), value: fc.jsonValue() })
        .map(({ name, value }) => (claims: Record<string, unknown>) => ({ ...claims, [name]: value })),
      fc.constantFrom('sub', 'exp', 'iss', 'iat', 'nbf', 'jti').map((name) => (claims: Record<string, unknown>) => {
        const copy = { ...claims };
        delete copy[name];
        return copy;
      }),
      fc.constant((claims: Record<string, unknown>) => ({ ...claims, exp: (claims.exp as number) + 1 })),
      fc.constant((claims: Record<string, unknown>) => ({ ...claims, admin: true })),
    );
    const changePayload = changeClaims.map((change): Mutation => (t) => {
      const [h, p, s] = t.split('.') as [string, string, string];
      return `${h}.${b64json(change(decode(p)))}.${s}`;
    });
    return fc.oneof(flipChar, truncate, dropTail, append, swapSegments, reHeader, forbiddenHeader, changePayload);
  }

  test(`${RUNS} mutations of valid tokens (ES256, EdDSA, PS256, HS256): every one refused, none crashes the server`, async () => {
    const outcomes = new Map<number, number>();
    await fc.assert(fc.asyncProperty(fc.constantFrom(...tokens.keys()), fc.array(mutations(), { minLength: 1, maxLength: 3 }), async (index, steps) => {
      const original = tokens[index]!;
      const mutated = steps.reduce((t, step) => step(t), original);
      fc.pre(mutated !== original);
      const response = await signet.post('/v1/verify', { token: mutated });
      outcomes.set(response.status, (outcomes.get(response.status) ?? 0) + 1);
      assert.ok(response.status === 401 || response.status === 400, `${JSON.stringify(mutated)} → ${response.status} ${JSON.stringify(response.body)}`);
      if (response.status === 401) {
        assert.equal(response.body.valid, false);
        assert.ok(response.body.errors.length > 0);
      }
      assert.ok(!('claims' in response.body) && !('header' in response.body));
    }), { numRuns: RUNS });
    assert.ok((outcomes.get(401) ?? 0) > RUNS / 2, JSON.stringify([...outcomes]));
  });

  test('afterwards the server still answers, and the original tokens still verify', async () => {
    assert.equal((await signet.get('/healthz')).status, 200);
    for (const token of tokens) assert.equal((await signet.post('/v1/verify', { token })).status, 200);
  });
});
