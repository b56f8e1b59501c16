// vault-policy.hcl against a real Vault: a token with only that policy (no `default`) runs everything Signet does
// (sign ES256 and HS256, verify both, HS256 through Vault's transit/verify, JWKS, readiness, token lookup and
// renewal), and the same token is refused (HTTP 403) by Vault for everything else an attacker would want.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { startVault, type TestVault } from '../harness/vault.ts';
import { startSignet, type TestSignet } from '../harness/signet.ts';
import { ROOT, policyRules, vaultRaw } from '../harness/ops.ts';

const POLICY = readFileSync(join(ROOT, 'vault-policy.hcl'), 'utf8');
const ISSUER = 'https://issuer.test';

describe('vault-policy.hcl: least privilege against a real Vault', () => {
  let vault: TestVault;
  let signet: TestSignet;
  let token: string;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256', { exportable: false });
    await vault.createKey('app-hmac', 'hmac');
    await vault.createKey('other', 'ecdsa-p256');
    await vault.createKey('other-hmac', 'hmac');
    await vault.api('PUT', 'sys/policies/acl/signet', { policy: POLICY });
    const created = await vault.api('POST', 'auth/token/create', {
      policies: ['signet'], no_default_policy: true, ttl: '1h', renewable: true, display_name: 'signet-policy-test',
    });
    token = (created.auth as { client_token: string }).client_token;
    signet = await startSignet(vault, [
      { name: 'app', alg: 'ES256', audiences: ['api'] },
      { name: 'app-hmac', alg: 'HS256', audiences: ['api'] },
    ], { env: { VAULT_TOKEN: token }, config: { log_level: 'warn' } });
  });

  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  test('the policy file holds exactly the paths Signet calls, with the least capabilities', () => {
    assert.deepEqual(Object.fromEntries(policyRules(POLICY)), {
      'transit/keys/app': ['read'],
      'transit/sign/app/sha2-256': ['update'],
      'transit/keys/app-hmac': ['read'],
      'transit/hmac/app-hmac/sha2-256': ['update'],
      'transit/verify/app-hmac/sha2-256': ['update'],
      'auth/token/lookup-self': ['read'],
      'auth/token/renew-self': ['update'],
    });
  });

  test('the token carries that policy alone', async () => {
    const self = await vaultRaw(vault.address, token, 'GET', 'auth/token/lookup-self');
    assert.equal(self.status, 200);
    assert.deepEqual(self.body.data.policies, ['signet']);
    const renewed = await vaultRaw(vault.address, token, 'POST', 'auth/token/renew-self', {});
    assert.equal(renewed.status, 200, JSON.stringify(renewed.body));
    assert.ok(renewed.body.auth.lease_duration > 0);
  });

  test('Signet with that token is ready: authenticated, both keys loaded (the HMAC key fingerprinted)', async () => {
    assert.deepEqual(signet.config.vault.auth, { method: 'token', tokenFile: undefined, token }, 'Signet holds the restricted token, not the root token');
    const ready = await signet.get('/readyz');
    assert.equal(ready.status, 200, ready.text);
    assert.equal(ready.body.ready, true);
    assert.equal(ready.body.vault.authenticated, true);
    assert.equal(ready.body.vault.method, 'token');
    assert.deepEqual(ready.body.keys, { app: true, 'app-hmac': true });
  });

  test('signs ES256, publishes the key in the JWKS, and the token verifies with jose and with Signet', async () => {
    const signed = await signet.post('/v1/sign/app', { claims: { sub: 'policy-test', aud: 'api' } });
    assert.equal(signed.status, 200, JSON.stringify(signed.body));
    assert.equal(signed.body.alg, 'ES256');
    assert.equal(signed.body.key, 'app');
    assert.equal(signed.body.key_version, 1);

    const jwks = await signet.get('/.well-known/jwks.json');
    assert.equal(jwks.status, 200);
    assert.deepEqual(jwks.body.keys.map((k: { kid: string }) => k.kid), [signed.body.kid], 'only the ES256 key; never the HMAC key');
    const { payload, protectedHeader } = await jwtVerify(signed.body.token, createLocalJWKSet(jwks.body), {
      algorithms: ['ES256'], issuer: ISSUER, audience: 'api',
    });
    assert.equal(payload.sub, 'policy-test');
    assert.equal(protectedHeader.kid, signed.body.kid);

    const verified = await signet.post('/v1/verify', { token: signed.body.token, audience: 'api' });
    assert.equal(verified.status, 200, JSON.stringify(verified.body));
    assert.equal(verified.body.valid, true);
    assert.equal(verified.body.key, 'app');
  });

  test('signs HS256 and verifies it through Vault (transit/verify); a forged HMAC is refused', async () => {
    const signed = await signet.post('/v1/sign/app-hmac', { claims: { sub: 'policy-test', aud: 'api' } });
    assert.equal(signed.status, 200, JSON.stringify(signed.body));
    assert.equal(signed.body.alg, 'HS256');

    const verified = await signet.post('/v1/verify', { token: signed.body.token, audience: 'api' });
    assert.equal(verified.status, 200, JSON.stringify(verified.body));
    assert.equal(verified.body.valid, true);
    assert.equal(verified.body.alg, 'HS256');

    const [h, p, s] = (signed.body.token as string).split('.') as [string, string, string];
    const flipped = `${s.slice(0, -2)}${s.at(-2) === 'A' ? 'B' : 'A'}${s.at(-1)}`;
    const forged = await signet.post('/v1/verify', { token: `${h}.${p}.${flipped}` });
    assert.equal(forged.status, 401, JSON.stringify(forged.body));
    assert.equal(forged.body.valid, false);

    const metrics = await signet.get('/metrics');
    assert.match(metrics.text, /^signet_vault_requests_total\{operation="verify",outcome="ok"\} [1-9]/m, 'HS256 verification went through Vault');
  });

  test('no call Signet made was refused by Vault', async () => {
    const metrics = await signet.get('/metrics');
    const refused = metrics.text.split('\n').filter((l) => l.startsWith('signet_vault_requests_total') && !/outcome="ok"/.test(l));
    assert.deepEqual(refused, []);
    assert.match(metrics.text, /^signet_vault_authenticated 1$/m);
    assert.doesNotMatch(metrics.text, /^signet_vault_auth_failures_total\{/m);
  });

  // What a stolen Signet token must not be able to do, each tried directly against Vault.
  const refusals: Array<[string, string, string, unknown?]> = [
    ['rotate the key', 'POST', 'transit/keys/app/rotate', {}],
    ['change its configuration', 'POST', 'transit/keys/app/config', { min_decryption_version: 1, deletion_allowed: true }],
    ['export the private key', 'GET', 'transit/export/signing-key/app'],
    ['export the HMAC key', 'GET', 'transit/export/hmac-key/app-hmac'],
    ['delete the key', 'DELETE', 'transit/keys/app'],
    ['back the key up', 'GET', 'transit/backup/app'],
    ['read another key', 'GET', 'transit/keys/other'],
    ['sign with another key', 'POST', 'transit/sign/other/sha2-256', { input: 'aGVsbG8=' }],
    ['HMAC with another key', 'POST', 'transit/hmac/other-hmac/sha2-256', { input: 'aGVsbG8=' }],
    ['sign with the key under another hash', 'POST', 'transit/sign/app/sha2-512', { input: 'aGVsbG8=' }],
    ['verify (as an oracle) with the asymmetric key', 'POST', 'transit/verify/app/sha2-256', { input: 'aGVsbG8=', signature: 'vault:v1:AAAA' }],
    ['create a key', 'POST', 'transit/keys/new', { type: 'ecdsa-p256' }],
    ['import a key (BYOK)', 'POST', 'transit/keys/new/import', { type: 'ecdsa-p256', ciphertext: 'AAAA' }],
    ['import a new version into the key', 'POST', 'transit/keys/app/import_version', { ciphertext: 'AAAA' }],
    ['read the import wrapping key', 'GET', 'transit/wrapping_key'],
    ['list the keys', 'LIST', 'transit/keys'],
    ['trim old versions', 'POST', 'transit/keys/app/trim', { min_available_version: 1 }],
    ['write a policy', 'PUT', 'sys/policies/acl/mine', { policy: 'path "*" { capabilities = ["sudo"] }' }],
    ['create a child token', 'POST', 'auth/token/create', {}],
  ];
  for (const [what, method, path, body] of refusals) {
    test(`the Signet token cannot ${what} (${method} ${path}): HTTP 403`, async () => {
      const answer = await vaultRaw(vault.address, token, method, path, body);
      assert.equal(answer.status, 403, `${method} ${path} answered ${answer.status} ${JSON.stringify(answer.body)}`);
      assert.match(JSON.stringify(answer.body.errors), /permission denied/);
    });
  }

  test('after all those attempts the key is untouched', async () => {
    const key = await vault.readKey('app');
    assert.equal(key.latest_version, 1);
    assert.equal(key.min_decryption_version, 1);
    assert.equal(key.exportable, false);
    assert.equal(key.deletion_allowed, false);
    const keys = await vault.api('LIST', 'transit/keys');
    assert.deepEqual(((keys.data as { keys: string[] }).keys).sort(), ['app', 'app-hmac', 'other', 'other-hmac']);
  });
});
