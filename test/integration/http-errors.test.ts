// Bad requests get the right status and a message that names the problem, in Vault's error shape, and the
// server keeps serving afterwards.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startSignet, eventually, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

describe('refusals', () => {
  let vault: TestVault;
  let signet: TestSignet;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
    await vault.createKey('users', 'ed25519');
    signet = await startSignet(vault, [{ name: 'app', audiences: ['api'], max_ttl: '1h' }, { name: 'users', subject_pattern: 'user-[0-9]+' }]);
    await signet.ready(10_000);
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  const cases: Array<{ name: string; path?: string; body: unknown; headers?: Record<string, string>; status: number; error: string | RegExp }> = [
    { name: 'unknown top-level field', body: { claims: {}, extra: 1 }, status: 400, error: 'body: unknown field "extra"' },
    { name: 'claims missing', body: { ttl: '5m' }, status: 400, error: 'body: missing required field "claims"' },
    { name: 'claims not an object (no coercion)', body: { claims: 'sub=x' }, status: 400, error: 'body.claims: must be object' },
    { name: 'ttl of the wrong type (no coercion)', body: { claims: {}, ttl: true }, status: 400, error: /^body\.ttl: / },
    { name: 'ttl not a duration', body: { claims: {}, ttl: '5 minutes' }, status: 400, error: 'ttl: must be a duration such as "15m" or a number of seconds' },
    { name: 'unknown header field', body: { claims: {}, headers: { kid: 'mine' } }, status: 400, error: 'body.headers: unknown field "kid"' },
    { name: 'malformed JSON', body: '{"claims": {', status: 400, error: 'request body is not valid JSON' },
    { name: 'empty body', body: '', status: 400, error: 'request body is empty; send a JSON object' },
    { name: 'reserved claim', body: { claims: { iss: 'https://evil.test' } }, status: 403, error: /^claim iss: set by Signet/ },
    { name: 'audience outside the allow-list', body: { claims: { aud: 'billing' } }, status: 403, error: /^claim aud: a value is not in this key's audience allow-list/ },
    { name: 'sub outside the subject_pattern', path: '/v1/sign/users', body: { claims: { sub: 'admin' } }, status: 403, error: "claim sub: does not match this key's subject_pattern (keys[].subject_pattern)" },
    { name: 'sub missing where a subject_pattern is set', path: '/v1/sign/users', body: { claims: {} }, status: 403, error: 'claim sub: required by this key (keys[].subject_pattern)' },
    { name: 'unknown key', path: '/v1/sign/nope', body: { claims: {} }, status: 404, error: /^unknown key "nope"/ },
    { name: 'not JSON', body: 'claims=1', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, error: 'Content-Type must be application/json' },
    { name: 'text/plain', body: '{"claims":{}}', headers: { 'content-type': 'text/plain' }, status: 415, error: 'Content-Type must be application/json' },
    { name: 'body too large', body: { claims: { blob: 'x'.repeat(17 * 1024) } }, status: 413, error: 'request body is larger than 16384 bytes (body_limit)' },
  ];

  for (const c of cases) {
    test(`${c.status}: ${c.name}`, async () => {
      const response = await signet.post(c.path ?? '/v1/sign', c.body, c.headers);
      assert.equal(response.status, c.status, JSON.stringify(response.body));
      assert.equal(response.body.errors.length, 1);
      if (typeof c.error === 'string') assert.equal(response.body.errors[0], c.error);
      else assert.match(response.body.errors[0], c.error);
      // Every answer carries a request id.
      assert.match(response.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    });
  }

  test('unknown route: 404 in the same shape', async () => {
    const response = await signet.get('/v1/nothing');
    assert.equal(response.status, 404);
    assert.deepEqual(response.body, { errors: ['no route GET /v1/nothing; see the README\'s HTTP API'] });
  });

  test('verify refuses malformed input with 400, and bad tokens with 401', async () => {
    const missing = await signet.post('/v1/verify', {});
    assert.equal(missing.status, 400);
    assert.deepEqual(missing.body.errors, ['body: missing required field "token"']);
    const garbage = await signet.post('/v1/verify', { token: 'not-a-jwt' });
    assert.equal(garbage.status, 401);
    assert.deepEqual(garbage.body, { valid: false, errors: ['token is not a compact JWS (header.payload.signature)'] });
    const none = `${Buffer.from('{"alg":"none","kid":"x"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.c2ln`;
    assert.deepEqual((await signet.post('/v1/verify', { token: none })).body.errors, ['header alg: "none" is never accepted']);
  });

  test('ttl above max_ttl is capped to max_ttl', async () => {
    const response = await signet.post('/v1/sign/app', { claims: { aud: 'api' }, ttl: '3h' });
    assert.equal(response.status, 200);
    const now = Math.floor(Date.now() / 1000);
    assert.ok(Math.abs(response.body.expires_at - (now + 3600)) <= 2);
  });

  test('the server keeps serving after every refusal', async () => {
    const response = await signet.post('/v1/sign/app', { claims: { sub: 'still-here', aud: 'api' } });
    assert.equal(response.status, 200);
    assert.equal((await signet.post('/v1/verify', { token: response.body.token, audience: 'api' })).status, 200);
  });

  test('a configured key missing in Vault: not ready, 503 saying how to create it, ready once it exists', async () => {
    const ghost = await startSignet(vault, [{ name: 'ghost' }], { config: { refresh_interval: '1s' } });
    try {
      await eventually(async () => (await ghost.get('/v1/keys')).body.keys[0].error, 5000, 'the load error');
      const keys = (await ghost.get('/v1/keys')).body.keys[0];
      assert.equal(keys.loaded, false);
      assert.equal(keys.error, 'Transit key "ghost" does not exist at transit/keys/ghost; create it (npx signet keys create ghost --type ...)');
      assert.equal((await ghost.get('/readyz')).status, 503);
      const sign = await ghost.post('/v1/sign/ghost', { claims: {} });
      assert.equal(sign.status, 503);
      assert.deepEqual(sign.body.errors, ['key "ghost" is not loaded from Vault yet; see /readyz and the logs']);
      await vault.createKey('ghost', 'ecdsa-p256');
      await ghost.ready(10_000);
      assert.equal((await ghost.post('/v1/sign/ghost', { claims: {} })).status, 200);
    } finally {
      await ghost.close();
    }
  });

  test('a caller-supplied request id is echoed, a malformed one replaced', async () => {
    const given = await signet.get('/healthz', { 'x-request-id': 'trace-123' });
    assert.equal(given.headers.get('x-request-id'), 'trace-123');
    const bad = await signet.get('/healthz', { 'x-request-id': 'bad id with spaces' });
    assert.match(bad.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/);
  });
});
