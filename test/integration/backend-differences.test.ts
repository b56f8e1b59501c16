// Where HashiCorp Vault and OpenBao differ, pinned per backend: each test runs on both (SIGNET_TEST_BACKEND) and
// asserts what that server really does, and what Signet then does. Measured on Vault v1.21.0 and OpenBao v2.7.2:
// - /sys/health: a standby answers 429 (200 with standbyok, which Signet sends); neither has 472/473 here (the
//   standby's answers are checked in ha.test.ts, which has a Raft cluster running anyway).
// - tokens: `hvs.` on Vault, `s.` on OpenBao (Signet never looks at the prefix).
// - key reads: OpenBao adds `soft_deleted`; a soft-deleted key refuses to sign (Signet: 502, JWKS kept).
// - a version below min_encryption_version: the same per-item error text, which Signet's itemError detects.
// - storage "file": gone in OpenBao 2.7 (the harness uses single-node Raft there instead).
// - Kubernetes auth: OpenBao requires kubernetes_ca_cert with disable_local_ca_jwt=true.
// - JSON limits: OpenBao refuses a body of more than 1,000 strings (a transit batch_input of 500 items); Vault takes it.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { MAX_BATCH_ITEMS, buildConfig } from '../../src/config.ts';
import { algSpec, type JwsAlg } from '../../src/jwt/algorithms.ts';
import { parseTransitKey } from '../../src/keys/transit-key.ts';
import { itemError } from '../../src/signer/batcher.ts';
import { freePort, vaultRaw } from '../../src/vault/dev-server.ts';
import { VaultHttp } from '../../src/vault/http.ts';
import { Transit } from '../../src/vault/transit.ts';
import { transitSignInput } from '../../src/vault/wire.ts';
import { startSignet } from '../harness/signet.ts';
import { BACKEND, startVault, vaultBinary, type TestVault } from '../harness/vault.ts';

const openbao = BACKEND === 'openbao';

/** Signet's own hot-path client for `address` with `token`, as services.ts builds it. */
function signetHttp(address: string, token: string): VaultHttp {
  const config = buildConfig({ vault: { address }, keys: [{ name: 'x', issuer: 'https://issuer.test' }] }, { VAULT_TOKEN: token });
  return new VaultHttp(config.vault, { current: () => token, rejected: () => {} });
}

describe(`backend differences (${BACKEND})`, () => {
  let vault: TestVault;
  before(async () => {
    vault = await startVault();
  });
  after(async () => vault?.stop());

  test('the server is the backend and version this run claims', async () => {
    const health = await vaultRaw(vault.address, undefined, 'GET', 'sys/health');
    assert.equal(health.status, 200);
    const { stdout } = await promisify(execFile)(await vaultBinary(), ['version']);
    // "Vault v1.21.0, built …" / "OpenBao v2.7.2 (commit), …"
    const reported = /^(Vault|OpenBao) v(\d+\.\d+\.\d+)[ ,]/.exec(stdout);
    assert.deepEqual(reported?.slice(1), [openbao ? 'OpenBao' : 'Vault', health.body.version], stdout);
  });

  test('tokens: hvs. on Vault, s. on OpenBao; Signet signs with either', async () => {
    await vault.createKey('tok', 'ed25519');
    const created = ((await vault.api('POST', 'auth/token/create', { policies: ['root'], ttl: '1h' })).auth as { client_token: string }).client_token;
    assert.ok(created.startsWith(openbao ? 's.' : 'hvs.'), `token prefix ${created.slice(0, 4)}`);
    const signet = await startSignet(vault, [{ name: 'tok' }], { env: { VAULT_TOKEN: created } });
    try {
      await signet.ready(10_000);
      const signed = await signet.post('/v1/sign/tok', { claims: {} });
      assert.equal(signed.status, 200, JSON.stringify(signed.body));
    } finally {
      await signet.close();
    }
  });

  test('key reads: OpenBao adds soft_deleted=false; Signet parses both the same', async () => {
    await vault.createKey('read', 'ecdsa-p256');
    await vault.rotate('read');
    const data = await vault.readKey('read');
    if (openbao) assert.equal(data.soft_deleted, false);
    else assert.equal('soft_deleted' in data, false);
    const key = parseTransitKey('read', data);
    assert.deepEqual(key.versions.map((v) => v.version), [1, 2]);
    assert.equal(key.latestVersion, 2);
    assert.ok(key.versions.every((v) => v.publicKey?.startsWith('-----BEGIN PUBLIC KEY-----')));
  });

  test('a version below min_encryption_version: the per-item error Signet detects as version_below_minimum', async () => {
    await vault.createKey('min', 'ecdsa-p256');
    await vault.rotate('min');
    await vault.configKey('min', { min_encryption_version: 2 });
    const http = signetHttp(vault.address, vault.rootToken);
    try {
      // Signet's own call: batch_input with an explicit key_version, marshaling_algorithm=jws.
      const transit = new Transit(http, 'transit');
      const input = Buffer.from('header.payload', 'ascii').toString('base64');
      const [below] = await transit.signBatch('min', 1, algSpec('ES256'), [input]);
      assert.deepEqual(below, { error: 'requested version for signing is less than the minimum encryption key version' });
      assert.equal(itemError((below as { error: string }).error).code, 'version_below_minimum');
      const [ok] = await transit.signBatch('min', 2, algSpec('ES256'), [input]);
      assert.match((ok as { signature: string }).signature, /^vault:v2:[A-Za-z0-9_-]+$/);
    } finally {
      await http.close();
    }
  });

  test(`a transit batch of ${MAX_BATCH_ITEMS} items (batching.max_batch_size's ceiling) is signed with the most call parameters; OpenBao refuses 500 items`, async () => {
    await vault.createKey('wide', 'ed25519');
    await vault.createKey('wide-rsa', 'rsa-2048');
    const http = signetHttp(vault.address, vault.rootToken);
    try {
      const transit = new Transit(http, 'transit');
      const inputs = (n: number, alg: JwsAlg) => Array.from({ length: n }, (_, i) => transitSignInput(`header.payload-${i}`, algSpec(alg)));
      // PS256 sends the most parameters (marshaling_algorithm, signature_algorithm, salt_length) beside the items.
      for (const [key, alg] of [['wide-rsa', 'PS256'], ['wide', 'EdDSA']] as const) {
        const signed = await transit.signBatch(key, 1, algSpec(alg), inputs(MAX_BATCH_ITEMS, alg));
        assert.equal(signed.filter((r) => 'signature' in r).length, MAX_BATCH_ITEMS, alg);
      }
      const over = transit.signBatch('wide', 1, algSpec('EdDSA'), inputs(500, 'EdDSA'));
      if (openbao) await assert.rejects(over, /HTTP 400: refused JSON input due to high complexity: exceeded maximum number of strings/);
      else assert.equal((await over).length, 500);
    } finally {
      await http.close();
    }
  });

  test('a soft-deleted key (OpenBao only): signs answer 502 with OpenBao\'s reason, the JWKS keeps its public keys', async () => {
    await vault.createKey('soft', 'ecdsa-p256');
    const deleted = await vaultRaw(vault.address, vault.rootToken, 'DELETE', 'transit/keys/soft/soft-delete');
    if (!openbao) {
      // Vault has no soft delete: the path does not exist, so nothing below can happen there.
      assert.ok(deleted.status === 404 || deleted.status === 405, `Vault answered ${deleted.status}`);
      return;
    }
    assert.equal(deleted.status, 200);
    assert.equal((await vault.readKey('soft')).soft_deleted, true);
    const signet = await startSignet(vault, [{ name: 'soft' }]);
    try {
      await signet.ready(10_000);
      const signed = await signet.post('/v1/sign/soft', { claims: {} });
      assert.equal(signed.status, 502);
      assert.equal(signed.body.errors[0], 'Vault refused to sign: refusing to use soft-deleted key');
      // Tokens it signed before stay verifiable until the operator deletes the key for good.
      assert.equal((await signet.get('/.well-known/jwks.json')).body.keys.length, 1);
    } finally {
      await signet.close();
    }
  });

  test('sealed: 503 on both; Signet\'s probe says sealed', async () => {
    const other = await startVault();
    const http = signetHttp(other.address, other.rootToken);
    try {
      assert.equal(await http.health(2000), 'active');
      await other.api('PUT', 'sys/seal');
      assert.equal((await vaultRaw(other.address, undefined, 'GET', 'sys/health')).status, 503);
      assert.equal(await http.health(2000), 'sealed');
    } finally {
      await http.close();
      await other.stop();
    }
  });

  test('Kubernetes auth: disable_local_ca_jwt=true without kubernetes_ca_cert is refused by OpenBao only', async () => {
    await vault.api('POST', 'sys/auth/k8s-diff', { type: 'kubernetes' });
    const r = await vaultRaw(vault.address, vault.rootToken, 'POST', 'auth/k8s-diff/config', { kubernetes_host: 'http://127.0.0.1:1', disable_local_ca_jwt: true });
    if (openbao) {
      assert.equal(r.status, 400);
      assert.deepEqual(r.body.errors, ['kubernetes_ca_cert must be given when disable_local_ca_jwt is true']);
    } else {
      assert.ok(r.status === 200 || r.status === 204, `Vault answered ${r.status}`);
    }
  });
});

test(`storage "file" (${BACKEND}): OpenBao 2.7 refuses it; restart tests use single-node Raft there`, { skip: openbao ? false : 'Vault keeps file storage: the outage tests use it' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'signet-file-storage-'));
  try {
    const config = join(dir, 'server.hcl');
    writeFileSync(config, `storage "file" { path = "${dir}/data" }\nlistener "tcp" { address = "127.0.0.1:${await freePort()}"\n tls_disable = true }\ndisable_mlock = true\n`);
    const child = spawn(await vaultBinary(), ['server', `-config=${config}`], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: dir } });
    let output = '';
    child.stdout.on('data', (c) => { output += c; });
    child.stderr.on('data', (c) => { output += c; });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.notEqual(code, 0);
    assert.match(output, /unknown storage type file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
