// Auto-auth against a real Vault: AppRole (token revoked mid-traffic, short TTL renewed, max TTL re-login), a
// token file rewritten as Vault Agent's sink does, and Vault's JWT auth with a token file. In each case signing
// carries on without a failed request, and no secret reaches a log line.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { startSignet, eventually, type TestSignet } from '../harness/signet.ts';
import { BACKEND, startVault, type TestVault } from '../harness/vault.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), 'signet-auth-'));
/** The max TTL of role "short": its tokens end this long after they are issued, renewed or not. */
const SHORT_MAX_TTL_S = 7;

const POLICY = `
path "transit/sign/*" { capabilities = ["update"] }
path "transit/hmac/*" { capabilities = ["update"] }
path "transit/verify/*" { capabilities = ["update"] }
path "transit/keys/*" { capabilities = ["read"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
`;

const active = new Set<{ stop(): Promise<void> }>();
/** Stops every traffic still running (a test that failed midway), before its Signet closes. */
async function stopTraffic(): Promise<void> {
  await Promise.all([...active].map((load) => load.stop()));
  active.clear();
}

/** Two clients signing in a loop; returns the statuses seen. */
function traffic(signet: TestSignet) {
  const statuses: number[] = [];
  const errors: string[] = [];
  let running = true;
  const workers = Array.from({ length: 2 }, async () => {
    while (running) {
      const r = await signet.post('/v1/sign/app', { claims: { sub: 'auth-test' } });
      statuses.push(r.status);
      if (r.status !== 200) errors.push(r.body?.errors?.[0]);
      await sleep(30);
    }
  });
  const load = { statuses, errors, stop: async () => { running = false; await Promise.all(workers); } };
  active.add(load);
  return load;
}

/** Waits until the traffic has answered a few more signs than `count` (it runs, and has run past a point). */
async function signsAfter(load: ReturnType<typeof traffic>, count: number): Promise<void> {
  await eventually(() => load.statuses.length >= count + 4, 10_000, `4 signs answered after the first ${count}`, 20);
}

describe('Vault auth methods and token lifecycle', () => {
  let vault: TestVault;
  let roleId: string;
  let secretIdFile: string;
  let secretId: string;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
    await vault.api('PUT', 'sys/policies/acl/signet', { policy: POLICY });
    await vault.api('POST', 'sys/auth/approle', { type: 'approle' });
    await vault.api('POST', 'auth/approle/role/signet', { token_policies: ['signet'], token_ttl: '1h', token_max_ttl: '2h' });
    await vault.api('POST', 'auth/approle/role/short', { token_policies: ['signet'], token_ttl: '3s', token_max_ttl: `${SHORT_MAX_TTL_S}s` });
    roleId = ((await vault.api('GET', 'auth/approle/role/signet/role-id')).data as { role_id: string }).role_id;
    secretId = ((await vault.api('POST', 'auth/approle/role/signet/secret-id', {})).data as { secret_id: string }).secret_id;
    secretIdFile = join(dir, 'secret-id');
    writeFileSync(secretIdFile, `${secretId}\n`);
  });
  after(async () => vault?.stop());

  function assertNoSecrets(signet: TestSignet, secrets: string[]) {
    for (const line of signet.logs) for (const secret of secrets) assert.ok(!line.includes(secret), `a log line contains a secret: ${line.slice(0, 200)}`);
  }

  test('AppRole: the token is revoked mid-traffic; Signet logs in again and no sign fails', async () => {
    const signet = await startSignet(vault, [{ name: 'app' }], {
      config: { vault: { address: vault.address, auth: { method: 'approle', role_id: roleId, secret_id_file: secretIdFile } } },
    });
    try {
      await signet.ready(10_000);
      const load = traffic(signet);
      await signsAfter(load, 0);
      const first = signet.app.services.auth.current();
      const mark = signet.logs.length;
      await vault.api('POST', 'auth/token/revoke', { token: first });
      const revokedAfter = load.statuses.length;
      // The next sign meets the 403; Signet looks the token up, logs in again, and retries with the new token.
      await signet.waitForLog(/"event":"authenticated"/, 15_000, mark);
      await signsAfter(load, revokedAfter);
      await load.stop();
      assert.notEqual(signet.app.services.auth.current(), first, 'a new token');
      assert.deepEqual(load.errors, [], `failed signs: ${load.errors.length} of ${load.statuses.length}`);
      assert.equal(signet.logs.slice(mark).filter((l) => l.includes('"event":"authenticated"')).length, 1, 'one login for the revocation');
      assert.equal((await signet.get('/readyz')).status, 200);
      assertNoSecrets(signet, [first, signet.app.services.auth.current(), secretId]);
    } finally {
      await stopTraffic();
      await signet.close();
    }
  });

  test('AppRole with a 3 s TTL and 7 s max TTL: renewed before expiry, then a new login at max TTL', async () => {
    const shortRoleId = ((await vault.api('GET', 'auth/approle/role/short/role-id')).data as { role_id: string }).role_id;
    const shortSecret = ((await vault.api('POST', 'auth/approle/role/short/secret-id', {})).data as { secret_id: string }).secret_id;
    const file = join(dir, 'short-secret-id');
    writeFileSync(file, shortSecret);
    const signet = await startSignet(vault, [{ name: 'app' }], {
      config: { vault: { address: vault.address, auth: { method: 'approle', role_id: shortRoleId, secret_id_file: file } } },
    });
    try {
      await signet.ready(10_000);
      const first = signet.app.services.auth.current();
      // The token's end: issued + the role's max TTL, however it is renewed. Read now, while the token is young: a
      // lookup after the max_ttl log line came, on a loaded CI machine, after the token had expired (403).
      const lookup = await vault.api('POST', 'auth/token/lookup', { token: first });
      const expireAt = Date.parse((lookup.data as { issue_time: string }).issue_time) + SHORT_MAX_TTL_S * 1000;
      assert.ok(Number.isFinite(expireAt), 'Vault states when the token was issued');
      const load = traffic(signet);
      // Renewed at two thirds of the TTL (about 2 s and 4 s after the login); at about 6 s renewal gives only the
      // 1 s left before the max TTL, and Signet logs in again then, while the token still works.
      const renewed = await signet.waitForLog(/"event":"renewed"/, 15_000);
      const maxTtl = await signet.waitForLog(/"event":"max_ttl"/, 20_000, renewed.index);
      const relogin = await signet.waitForLog(/"event":"authenticated"/, 15_000, maxTtl.index);
      const reloginAt = Date.parse(relogin.line.time);
      assert.ok(reloginAt < expireAt, `the new login (${relogin.line.time}) came before the old token expired (${new Date(expireAt).toISOString()})`);
      const second = signet.app.services.auth.current();
      assert.notEqual(second, first, 'a new token');
      // Keep signing across the old token's expiry: nothing may still use it.
      const beyond = expireAt + 1000;
      await eventually(() => Date.now() > beyond, 15_000, 'the old token\'s expiry passed under traffic', 50);
      await signsAfter(load, load.statuses.length);
      await load.stop();
      assert.deepEqual(load.errors, [], `failed signs: ${load.errors.length} of ${load.statuses.length}`);
      assert.ok(load.statuses.every((s) => s === 200), `statuses other than 200: ${load.statuses.filter((s) => s !== 200).join(', ')}`);
      assert.ok(!signet.logs.some((l) => /"event":"(token_rejected|auth_failed)"/.test(l)), 'Vault never refused the token');
      const ttl = Number(/^signet_vault_token_ttl_seconds (\S+)$/m.exec((await signet.get('/metrics')).text)![1]);
      assert.ok(ttl > 0 && ttl <= 3, `token TTL left ${ttl}`);
      assertNoSecrets(signet, [shortSecret, first, second]);
    } finally {
      await stopTraffic();
      await signet.close();
    }
  });

  test('token_file rewritten (Vault Agent sink): the new token is used, the old one can be revoked', async () => {
    const create = async () => ((await vault.api('POST', 'auth/token/create', { policies: ['signet'], ttl: '1h' })).auth as { client_token: string }).client_token;
    const t1 = await create();
    const file = join(dir, 'vault-token');
    writeFileSync(file, t1);
    const signet = await startSignet(vault, [{ name: 'app' }], {
      config: { vault: { address: vault.address, auth: { method: 'token', token_file: file } } },
      env: { VAULT_TOKEN: '' },
    });
    try {
      await signet.ready(10_000);
      assert.equal(signet.app.services.auth.current(), t1);
      const load = traffic(signet);
      await signsAfter(load, 0);
      const t2 = await create();
      writeFileSync(file, `${t2}\n`);
      await eventually(() => signet.app.services.auth.current() === t2, 5000, 'the new token in use');
      await vault.api('POST', 'auth/token/revoke', { token: t1 });
      await signsAfter(load, load.statuses.length);
      await load.stop();
      assert.deepEqual(load.errors, []);
      assertNoSecrets(signet, [t1, t2]);
    } finally {
      await stopTraffic();
      await signet.close();
    }
  });

  test("Vault's JWT auth with a token file", async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await vault.api('POST', 'sys/auth/jwt', { type: 'jwt' });
    await vault.api('POST', 'auth/jwt/config', { jwt_validation_pubkeys: [publicKey.export({ type: 'spki', format: 'pem' })] });
    await vault.api('POST', 'auth/jwt/role/signet', { role_type: 'jwt', bound_audiences: ['vault'], user_claim: 'sub', token_policies: ['signet'], token_ttl: '1h' });
    const jwt = await new SignJWT({ sub: 'signet-sidecar' }).setProtectedHeader({ alg: 'ES256' }).setAudience('vault').setIssuedAt().setExpirationTime('10m').sign(privateKey);
    const file = join(dir, 'jwt');
    writeFileSync(file, jwt);
    const signet = await startSignet(vault, [{ name: 'app' }], {
      config: { vault: { address: vault.address, auth: { method: 'jwt', role: 'signet', token_file: file } } },
      env: { VAULT_TOKEN: '' },
    });
    try {
      await signet.ready(10_000);
      assert.equal((await signet.post('/v1/sign/app', { claims: {} })).status, 200);
      assertNoSecrets(signet, [jwt, signet.app.services.auth.current()]);
    } finally {
      await stopTraffic();
      await signet.close();
    }
  });

  test('a revoked static VAULT_TOKEN: readiness false, signs 503 with a message that says what to do', async () => {
    const token = ((await vault.api('POST', 'auth/token/create', { policies: ['signet'], ttl: '1h' })).auth as { client_token: string }).client_token;
    const signet = await startSignet(vault, [{ name: 'app' }], { env: { VAULT_TOKEN: token }, config: { readiness: { vault_outage_tolerance: '0s' } } });
    try {
      await signet.ready(10_000);
      await vault.api('POST', 'auth/token/revoke', { token });
      const r = await signet.post('/v1/sign/app', { claims: {} });
      assert.equal(r.status, 503);
      // Vault adds "invalid token" to its 403 for a revoked token; OpenBao says only "permission denied". Signet
      // classifies the refusal by status (403), not by this text, and passes Vault's words through.
      const said = BACKEND === 'openbao' ? 'permission denied' : 'permission denied; invalid token';
      assert.equal(r.body.errors[0], `Vault refused Signet's token for sign (HTTP 403: ${said}); check the token and that its policy includes vault-policy.hcl`);
      assert.match(r.body.errors[0], /Vault refused Signet's token for sign \(HTTP 403.*check the token and that its policy includes vault-policy\.hcl/);
      await eventually(async () => (await signet.get('/readyz')).status === 503, 5000, 'readiness false');
      assert.equal((await signet.get('/readyz')).body.vault.authenticated, false);
      assertNoSecrets(signet, [token]);
    } finally {
      await stopTraffic();
      await signet.close();
    }
  });
});
