// deploy/vault/setup.sh against a real (dev) Vault with nothing set up: Transit, non-exportable keys with
// auto_rotate_period, both policies (the Signet one identical in rules to vault-policy.hcl), AppRole and Kubernetes
// roles bound to them. Then the results are used: Signet logs in with the AppRole role and signs; an operator token
// rotates and configures but cannot export, back up, delete or sign; the policy it writes for other key types and
// another mount is enough for Signet with EdDSA, PS384 and HS512 keys.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDevVault, type VaultServer } from '../../src/vault/dev-server.ts';
import { UNUSED_CA_PEM, vaultBinary, type TestVault } from '../harness/vault.ts';
import { startSignet } from '../harness/signet.ts';
import { ROOT, policyRules, run, vaultRaw, type RunResult } from '../harness/ops.ts';

const SETUP = join(ROOT, 'deploy', 'vault', 'setup.sh');

describe('deploy/vault/setup.sh against a real Vault', () => {
  let vault: VaultServer;
  let bin: string;
  let home: string;
  let caFile = '';
  let first: RunResult;
  let second: RunResult;
  const root = (method: string, path: string, body?: unknown) => vaultRaw(vault.address, vault.rootToken, method, path, body);

  const setup = (env: Record<string, string> = {}): Promise<RunResult> => run('bash', [SETUP], {
    env: {
      PATH: process.env.PATH, HOME: home, VAULT_ADDR: vault.address, VAULT_TOKEN: vault.rootToken, VAULT_BIN: bin,
      // No cluster here: Vault must not look for its own pod's CA and token (OpenBao then requires a CA certificate).
      K8S_DISABLE_LOCAL_CA_JWT: 'true',
      K8S_CA_CERT_FILE: caFile,
      ...env,
    },
    timeoutMs: 60_000,
  });

  before(async () => {
    bin = await vaultBinary();
    vault = await startDevVault(bin);
    home = mkdtempSync(join(tmpdir(), 'signet-setup-home-'));
    caFile = join(home, 'k8s-ca.pem');
    writeFileSync(caFile, UNUSED_CA_PEM);
    first = await setup();
    second = await setup();
  });

  after(async () => {
    await vault?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  test('runs cleanly, and again (idempotent)', () => {
    assert.equal(first.code, 0, `first run:\n${first.stdout}\n${first.stderr}`);
    assert.match(first.stderr, /enabled Transit at transit\//);
    assert.match(first.stderr, /created key app \(ecdsa-p256, ES256\)/);
    assert.equal(second.code, 0, `second run:\n${second.stdout}\n${second.stderr}`);
    assert.match(second.stderr, /Transit is mounted at transit\//);
    assert.match(second.stderr, /key app \(ecdsa-p256\) exists, not exportable/);
  });

  test('Transit is enabled; the keys exist, are not exportable, have no plaintext backup, and auto-rotate', async () => {
    const mount = await root('GET', 'sys/mounts/transit');
    assert.equal(mount.body.data.type, 'transit');
    for (const [name, type] of [['app', 'ecdsa-p256'], ['app-hmac', 'hmac']]) {
      const key = await root('GET', `transit/keys/${name}`);
      assert.equal(key.status, 200, `${name}: ${JSON.stringify(key.body)}`);
      assert.equal(key.body.data.type, type);
      assert.equal(key.body.data.exportable, false, `${name} exportable`);
      assert.equal(key.body.data.allow_plaintext_backup, false, `${name} allow_plaintext_backup`);
      assert.equal(key.body.data.auto_rotate_period, 720 * 3600, `${name} auto_rotate_period`);
      assert.equal(key.body.data.latest_version, 1, `${name}: the second run must not rotate or re-create it`);
    }
  });

  test('both policies are written: Signet\'s has exactly the rules of vault-policy.hcl, the operator\'s those of its file', async () => {
    const signet = await root('GET', 'sys/policies/acl/signet');
    assert.equal(signet.status, 200);
    assert.deepEqual(
      Object.fromEntries(policyRules(signet.body.data.policy)),
      Object.fromEntries(policyRules(readFileSync(join(ROOT, 'vault-policy.hcl'), 'utf8'))),
    );
    const operator = await root('GET', 'sys/policies/acl/signet-operator');
    assert.equal(operator.status, 200);
    assert.deepEqual(
      Object.fromEntries(policyRules(operator.body.data.policy)),
      Object.fromEntries(policyRules(readFileSync(join(ROOT, 'deploy', 'vault', 'operator-policy.hcl'), 'utf8'))),
    );
  });

  test('AppRole roles are bound to the policies, without the default policy', async () => {
    const signet = await root('GET', 'auth/approle/role/signet');
    assert.equal(signet.status, 200, JSON.stringify(signet.body));
    assert.deepEqual(signet.body.data.token_policies, ['signet']);
    assert.equal(signet.body.data.token_no_default_policy, true);
    assert.equal(signet.body.data.token_ttl, 3600);
    assert.equal(signet.body.data.bind_secret_id, true);
    const operator = await root('GET', 'auth/approle/role/signet-operator');
    assert.deepEqual(operator.body.data.token_policies, ['signet-operator']);
    assert.equal(operator.body.data.secret_id_num_uses, 1);
  });

  test('Kubernetes auth is configured and its role is bound to the service account, the audience and the policy', async () => {
    const config = await root('GET', 'auth/kubernetes/config');
    assert.equal(config.status, 200, JSON.stringify(config.body));
    assert.equal(config.body.data.kubernetes_host, 'https://kubernetes.default.svc');
    const role = await root('GET', 'auth/kubernetes/role/signet');
    assert.equal(role.status, 200, JSON.stringify(role.body));
    assert.deepEqual(role.body.data.bound_service_account_names, ['example-app']);
    assert.deepEqual(role.body.data.bound_service_account_namespaces, ['signet-example']);
    assert.equal(role.body.data.audience, 'vault');
    assert.deepEqual(role.body.data.token_policies, ['signet']);
    assert.equal(role.body.data.token_no_default_policy, true);
  });

  test('Signet logs in with the AppRole role and signs with both keys', async () => {
    const roleId = (await root('GET', 'auth/approle/role/signet/role-id')).body.data.role_id as string;
    const secretId = (await root('POST', 'auth/approle/role/signet/secret-id', {})).body.data.secret_id as string;
    const dir = mkdtempSync(join(tmpdir(), 'signet-approle-'));
    const secretFile = join(dir, 'secret-id');
    writeFileSync(secretFile, secretId, { mode: 0o600 });
    const signet = await startSignet(vault as TestVault, [{ name: 'app' }, { name: 'app-hmac' }], {
      config: { vault: { address: vault.address, auth: { method: 'approle', role_id: roleId, secret_id_file: secretFile } }, log_level: 'warn' },
      env: { VAULT_TOKEN: '' },
    });
    try {
      const ready = await signet.get('/readyz');
      assert.equal(ready.status, 200, ready.text);
      assert.equal(ready.body.vault.method, 'approle');
      for (const key of ['app', 'app-hmac']) {
        const signed = await signet.post(`/v1/sign/${key}`, { claims: { sub: 'setup-test' } });
        assert.equal(signed.status, 200, JSON.stringify(signed.body));
        const verified = await signet.post('/v1/verify', { token: signed.body.token });
        assert.equal(verified.status, 200, JSON.stringify(verified.body));
      }
    } finally {
      await signet.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an operator token rotates, configures and creates keys, but cannot export, back up, delete, trim or sign', async () => {
    const roleId = (await root('GET', 'auth/approle/role/signet-operator/role-id')).body.data.role_id;
    const secretId = (await root('POST', 'auth/approle/role/signet-operator/secret-id', {})).body.data.secret_id;
    const login = await vaultRaw(vault.address, undefined, 'POST', 'auth/approle/login', { role_id: roleId, secret_id: secretId });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    assert.deepEqual(login.body.auth.policies, ['signet-operator']);
    const token = login.body.auth.client_token as string;
    const op = (method: string, path: string, body?: unknown) => vaultRaw(vault.address, token, method, path, body);

    for (const [method, path, body] of [
      ['POST', 'transit/keys/app/rotate', {}],
      ['POST', 'transit/keys/app/config', { min_encryption_version: 0, auto_rotate_period: '2160h' }],
      ['GET', 'transit/keys/app', undefined],
      ['POST', 'transit/keys/op-created', { type: 'ed25519', exportable: false }],
      ['LIST', 'transit/keys', undefined],
      ['GET', 'auth/token/lookup-self', undefined],
    ] as const) {
      const answer = await op(method, path, body);
      assert.ok(answer.status === 200 || answer.status === 204, `${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    assert.equal((await root('GET', 'transit/keys/app')).body.data.latest_version, 2);

    for (const [method, path, body] of [
      ['GET', 'transit/export/signing-key/app', undefined],
      ['GET', 'transit/export/hmac-key/app-hmac', undefined],
      ['GET', 'transit/backup/app', undefined],
      ['POST', 'transit/restore/app', { backup: 'AAAA' }],
      ['DELETE', 'transit/keys/app', undefined],
      ['POST', 'transit/keys/app/trim', { min_available_version: 2 }],
      ['POST', 'transit/sign/app/sha2-256', { input: 'aGVsbG8=' }],
      ['POST', 'transit/hmac/app-hmac/sha2-256', { input: 'aGVsbG8=' }],
      ['PUT', 'sys/policies/acl/signet', { policy: 'path "*" { capabilities = ["sudo"] }' }],
    ] as const) {
      const answer = await op(method, path, body);
      assert.equal(answer.status, 403, `${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    }
  });

  test('refuses to adopt an exportable key', async () => {
    await root('POST', 'transit/keys/leaky', { type: 'ecdsa-p256', exportable: true });
    const result = await setup({ SIGNET_KEYS: 'leaky:ecdsa-p256' });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /key leaky is exportable/);
  });

  test('for other key types on another mount, the policy it writes is all Signet needs (EdDSA, PS384, HS512)', async () => {
    const result = await setup({
      TRANSIT_MOUNT: 'jwt', SIGNET_KEYS: 'ed:ed25519 rsa:rsa-2048:PS384 h512:hmac:HS512', SIGNET_POLICY: 'signet-jwt',
      OPERATOR_POLICY: 'signet-jwt-operator', APPROLE_ROLE: 'signet-jwt', OPERATOR_APPROLE_ROLE: 'signet-jwt-operator', K8S_ROLE: 'signet-jwt',
      AUTO_ROTATE_PERIOD: '2160h',
    });
    assert.equal(result.code, 0, result.stderr);
    const policy = (await root('GET', 'sys/policies/acl/signet-jwt')).body.data.policy as string;
    assert.deepEqual(Object.fromEntries(policyRules(policy)), {
      'jwt/keys/ed': ['read'], 'jwt/sign/ed': ['update'],
      'jwt/keys/rsa': ['read'], 'jwt/sign/rsa/sha2-384': ['update'],
      'jwt/keys/h512': ['read'], 'jwt/hmac/h512/sha2-512': ['update'], 'jwt/verify/h512/sha2-512': ['update'], 'jwt/hmac/h512/sha2-256': ['update'],
      'auth/token/lookup-self': ['read'], 'auth/token/renew-self': ['update'],
    });
    const operatorPolicy = (await root('GET', 'sys/policies/acl/signet-jwt-operator')).body.data.policy as string;
    assert.ok([...policyRules(operatorPolicy).keys()].every((p) => p.startsWith('jwt/') || p.startsWith('auth/')), operatorPolicy);
    assert.equal((await root('GET', 'jwt/keys/h512')).body.data.auto_rotate_period, 2160 * 3600);

    const created = await root('POST', 'auth/token/create', { policies: ['signet-jwt'], no_default_policy: true, ttl: '10m' });
    const signet = await startSignet(vault as TestVault, [{ name: 'ed', alg: 'EdDSA' }, { name: 'rsa', alg: 'PS384' }, { name: 'h512', alg: 'HS512' }], {
      config: { vault: { address: vault.address, mount: 'jwt' }, log_level: 'warn' },
      env: { VAULT_TOKEN: created.body.auth.client_token },
    });
    try {
      const ready = await signet.get('/readyz');
      assert.equal(ready.status, 200, ready.text);
      for (const [key, alg] of [['ed', 'EdDSA'], ['rsa', 'PS384'], ['h512', 'HS512']]) {
        const signed = await signet.post(`/v1/sign/${key}`, { claims: { sub: 'setup-test' } });
        assert.equal(signed.status, 200, `${key}: ${JSON.stringify(signed.body)}`);
        assert.equal(signed.body.alg, alg);
        const verified = await signet.post('/v1/verify', { token: signed.body.token });
        assert.equal(verified.status, 200, `${key}: ${JSON.stringify(verified.body)}`);
      }
    } finally {
      await signet.close();
    }
  });
});
