// No secret ever reaches a log line, /metrics or /v1/keys. A full scenario against a real Vault, with every log
// line captured at debug level: every kind of key signs and verifies, callers authenticate (and fail to), every
// refusal path runs with secrets in the request, the Vault token is renewed, then revoked mid-way (Vault answers
// 403), then Vault is stopped (calls fail at the transport). Afterwards no log line may contain the Vault token,
// a caller token, an issued JWT, its payload or signature segment, the base64 Transit input, or any claim value
// sent. Every claim value is marked SECRET so that any echo of one is caught, whatever path it takes.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { algSpec, type JwsAlg } from '../../src/jwt/algorithms.ts';
import { transitSignInput } from '../../src/vault/wire.ts';
import { eventually, startSignet, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const KEYS = [
  { name: 'ed', type: 'ed25519', alg: 'EdDSA' },
  { name: 'es256', type: 'ecdsa-p256', alg: 'ES256' },
  { name: 'es384', type: 'ecdsa-p384', alg: 'ES384' },
  { name: 'es512', type: 'ecdsa-p521', alg: 'ES512' },
  { name: 'rs', type: 'rsa-2048', alg: 'RS256' },
  { name: 'ps', type: 'rsa-2048', alg: 'PS256' },
  { name: 'hs', type: 'hmac', alg: 'HS256' },
];
const CALLER_TOKEN = 'caller-SECRETTOKEN-Qm3kZ8pL1vX7';
const OTHER_CALLER_TOKEN = 'caller-SECRETTOKEN-Wj5nR2tY9bC4';
const WRONG_CALLER_TOKEN = 'caller-SECRETWRONG-Hx6gF3dS8aP0';
const CLAIMS = {
  sub: 'sub-SECRET-1234',
  email: 'email-SECRET-5678@example.test',
  profile: { ssn: 'ssn-SECRET-9012', tags: ['tag-SECRET-3456'] },
  roles: ['role-SECRET-7890'],
};
const POLICY = `
path "transit/*" { capabilities = ["create", "read", "update", "list"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
`;

describe('secrets never reach logs, /metrics or /v1/keys', () => {
  let vault: TestVault;
  let signet: TestSignet;
  let vaultToken: string;
  const issued: string[] = [];
  const transitInputs: string[] = [];
  const auth = { authorization: `Bearer ${CALLER_TOKEN}` };
  const scraped: Record<string, string> = {};

  before(async () => {
    vault = await startVault();
    for (const key of KEYS) await vault.createKey(key.name, key.type);
    await vault.api('PUT', 'sys/policies/acl/signet-secrets-test', { policy: POLICY });
    const created = await vault.api('POST', 'auth/token/create', {
      policies: ['signet-secrets-test'], no_default_policy: true, ttl: '6s', explicit_max_ttl: '1h', renewable: true,
    });
    vaultToken = (created.auth as { client_token: string }).client_token;
    const dir = mkdtempSync(join(tmpdir(), 'signet-secrets-'));
    writeFileSync(join(dir, 'vault-token'), `${vaultToken}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'callers'), `app:${CALLER_TOKEN}\nother:${OTHER_CALLER_TOKEN}\n`, { mode: 0o600 });
    // require_audience off: the refusal paths below are about secrets, not about the missing-aud rule.
    signet = await startSignet(vault, KEYS.map((k) => ({ name: k.name, alg: k.alg, audiences: ['api'], require_audience: false })), {
      config: {
        log_level: 'debug',
        refresh_interval: '1s',
        callers: { tokens_file: join(dir, 'callers') },
        vault: { address: vault.address, auth: { method: 'token', token_file: join(dir, 'vault-token') }, timeout: '1s', sign_timeout: '1s' },
      },
      env: { VAULT_TOKEN: '' },
      healthIntervalMs: 250,
    });
    await signet.ready(20_000);
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  test('with Vault up: every key signs and verifies, and every refusal path runs with secrets in the request', async () => {
    for (const key of KEYS) {
      const signed = await signet.post(`/v1/sign/${key.name}`, { claims: { ...CLAIMS, aud: 'api' } }, auth);
      assert.equal(signed.status, 200, JSON.stringify(signed.body));
      const token = signed.body.token as string;
      issued.push(token);
      // What Signet sent Vault for this token: the signing input, or its digest (ECDSA, RSA).
      transitInputs.push(transitSignInput(token.split('.').slice(0, 2).join('.'), algSpec(key.alg as JwsAlg)));
      assert.equal((await signet.post('/v1/verify', { token, audience: 'api' }, auth)).status, 200);
      assert.equal((await signet.post('/v1/verify', { token, audience: 'aud-SECRET-0000' }, auth)).status, 401);
      const [h, p, s] = token.split('.') as [string, string, string];
      const flipped = `${h}.${p}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
      assert.equal((await signet.post('/v1/verify', { token: flipped }, auth)).status, 401);
      const forged = `${h}.${Buffer.from(JSON.stringify({ ...CLAIMS, admin: 'admin-SECRET-1111' })).toString('base64url')}.${s}`;
      assert.equal((await signet.post('/v1/verify', { token: forged }, auth)).status, 401);
    }
    const refusals: Array<[unknown, number, Record<string, string>?]> = [
      [{ claims: { ...CLAIMS, iss: 'iss-SECRET-2222' } }, 403],
      [{ claims: { ...CLAIMS, aud: 'aud-SECRET-3333' } }, 403],
      [{ claims: { ...CLAIMS, exp: 'exp-SECRET-4444' } }, 403],
      [{ claims: { ...CLAIMS, sub: { nested: 'sub-SECRET-5555' } } }, 400],
      [{ claims: { deep: [[[[[[[[['deep-SECRET-6666']]]]]]]]] } }, 400],
      [{ claims: { long: `long-SECRET-7777${'x'.repeat(5000)}` } }, 400],
      [{ claims: CLAIMS, ttl: 'ttl-SECRET-8888' }, 400],
      [{ claims: CLAIMS, ttl: true }, 400],
      [{ claims: CLAIMS, extra: 'extra-SECRET-9999' }, 400],
      [{ claims: CLAIMS, headers: { typ: 'typ SECRET 1212' } }, 400],
      [{ claims: { blob: `blob-SECRET-1313${'x'.repeat(20_000)}` } }, 413],
      ['{"claims": {"sub": "json-SECRET-1414", ', 400],
      ['{"claims": {"__proto__": {"polluted": "proto-SECRET-1515"}}}', 400],
      [{ claims: CLAIMS }, 401, { authorization: `Bearer ${WRONG_CALLER_TOKEN}` }],
      [{ claims: CLAIMS }, 401, { authorization: `Basic ${Buffer.from(`user:${WRONG_CALLER_TOKEN}`).toString('base64')}` }],
      [{ claims: CLAIMS }, 415, { 'content-type': 'text/plain', ...auth }],
    ];
    for (const [body, status, headers] of refusals) {
      const response = await signet.post('/v1/sign/es256', body, headers ?? auth);
      assert.equal(response.status, status, `${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(response.body)}`);
      assert.ok(!JSON.stringify(response.body).includes('SECRET'), `the answer echoes a secret: ${JSON.stringify(response.body)}`);
    }
    assert.equal((await signet.post('/v1/sign/unknown-key-1616', { claims: CLAIMS }, auth)).status, 404);
    assert.equal((await signet.post('/v1/verify', { token: issued[0], extra: 'extra-SECRET-1717' }, auth)).status, 400);
    assert.equal((await signet.post('/v1/verify', { token: `${'a'.repeat(9000)}SECRET` }, auth)).status, 400);
    scraped.metricsUp = (await signet.get('/metrics')).text;
    scraped.keysUp = JSON.stringify((await signet.get('/v1/keys', auth)).body);
  });

  test('the Vault token is renewed (its TTL is 6 s)', async () => {
    await eventually(() => signet.logs.some((l) => /"event":"renewed"/.test(l)), 10_000, 'a renewal');
  });

  test('the Vault token is revoked mid-way: Vault answers 403, signing fails with 503, auth and key reads fail', async () => {
    await vault.api('POST', 'auth/token/revoke', { token: vaultToken });
    await eventually(async () => (await signet.post('/v1/sign/es256', { claims: CLAIMS }, auth)).status === 503, 10_000, 'sign refused');
    await eventually(async () => (await signet.post('/v1/sign/hs', { claims: CLAIMS }, auth)).status === 503, 10_000, 'HMAC sign refused');
    assert.equal((await signet.post('/v1/verify', { token: issued.at(-1) }, auth)).status, 503, 'HS256 verification needs Vault');
    assert.equal((await signet.post('/v1/verify', { token: issued[0] }, auth)).status, 200, 'asymmetric verification is local');
    await eventually(() => signet.logs.some((l) => /"event":"auth_failed"/.test(l) && /403/.test(l)), 10_000, 'an auth failure logged');
    await eventually(() => signet.logs.some((l) => /"event":"key_load_failed"/.test(l)), 10_000, 'a key read failure logged');
  });

  test('Vault stopped: calls fail at the transport; Signet keeps answering what it can', async () => {
    await vault.stop();
    await eventually(async () => (await signet.post('/v1/sign/es256', { claims: CLAIMS }, auth)).status === 503, 10_000, 'sign refused');
    assert.equal((await signet.post('/v1/verify', { token: issued.at(-1) }, auth)).status, 503);
    assert.equal((await signet.post('/v1/verify', { token: issued[1] }, auth)).status, 200);
    assert.equal((await signet.get('/.well-known/jwks.json')).status, 200);
    await eventually(() => signet.logs.some((l) => /unreachable|connection refused/.test(l)), 10_000, 'an unreachable Vault logged');
    scraped.metricsDown = (await signet.get('/metrics')).text;
    scraped.keysDown = JSON.stringify((await signet.get('/v1/keys', auth)).body);
  });

  test('the scenario ran every path it claims (so the checks below are not vacuous)', () => {
    const text = signet.logs.join('\n');
    for (const pattern of [/"event":"caller_refused"/, /"status":403/, /"status":401/, /"status":400/, /"status":413/, /"status":503/, /"msg":"request failed"/, /"event":"auth_failed"/, /"event":"key_load_failed"/, /"level":"debug"/]) {
      assert.match(text, pattern);
    }
    assert.ok(signet.logs.length > 100, `${signet.logs.length} log lines`);
    assert.equal(issued.length, KEYS.length);
  });

  test('no log line holds the Vault token, a caller token, a JWT or a part of one, the Transit input, or a claim value', () => {
    const secrets: Array<[string, string]> = [
      ['the Vault token', vaultToken],
      ['the Vault token without its prefix', vaultToken.replace(/^hv[sb]\./, '')],
      ['the root token', vault.rootToken],
      ['a caller token', CALLER_TOKEN],
      ['a caller token', OTHER_CALLER_TOKEN],
      ['a wrong caller token', WRONG_CALLER_TOKEN],
      ['a marked value', 'SECRET'],
    ];
    issued.forEach((token, i) => {
      const [, payload, signature] = token.split('.') as [string, string, string];
      secrets.push([`JWT ${i}`, token], [`JWT ${i} payload`, payload], [`JWT ${i} signature`, signature], [`JWT ${i} Transit input`, transitInputs[i]!]);
      secrets.push([`JWT ${i} signature as Vault returns it`, Buffer.from(signature, 'base64url').toString('base64').replace(/=+$/, '')]);
    });
    for (const [index, line] of signet.logs.entries()) {
      for (const [what, secret] of secrets) {
        assert.ok(!line.includes(secret), `log line ${index} holds ${what}: ${line.slice(0, 300)}`);
      }
    }
  });

  test('/metrics and /v1/keys hold no secret, with Vault up or down', () => {
    for (const [name, text] of Object.entries(scraped)) {
      assert.ok(text.length > 100, name);
      for (const secret of [vaultToken, vault.rootToken, CALLER_TOKEN, OTHER_CALLER_TOKEN, 'SECRET', ...issued, ...issued.map((t) => t.split('.')[2]!)]) {
        assert.ok(!text.includes(secret), `${name} holds a secret`);
      }
    }
    // No label carries a claim, a subject or a token: the label names Signet's metrics use are bounded.
    const labels = new Set([...scraped.metricsUp!.matchAll(/^signet_[a-z_]+\{([^}]*)\}/gm)].flatMap((m) => [...m[1]!.matchAll(/(\w+)="/g)].map((l) => l[1]!)));
    for (const label of labels) assert.ok(['key', 'alg', 'outcome', 'operation', 'reason', 'state', 'le', 'status', 'class', 'kind', 'quantile', 'space', 'version', 'type', 'major', 'minor', 'patch'].includes(label), `unexpected label ${label}`);
  });
});
