// A 3-node Vault HA cluster on integrated storage (Raft): the active node is stopped under sign traffic.
// Signet, pointed at a standby, follows the cluster through Vault's own request forwarding: signing resumes
// after the election by itself, and every token Signet returned verifies.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { startRaftCluster } from '../harness/raft.ts';
import { startSignet, eventually } from '../harness/signet.ts';
import { BACKEND, type TestVault } from '../harness/vault.ts';
import { vaultRaw } from '../../src/vault/dev-server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the active node of a 3-node Raft cluster stops under traffic; signing resumes, zero invalid tokens', { timeout: 180_000 }, async () => {
  const cluster = await startRaftCluster(3);
  try {
    const leader = (await cluster.leader())!;
    assert.ok(leader, 'an active node');
    await cluster.api(leader.address, 'POST', 'sys/mounts/transit', { type: 'transit' });
    await cluster.api(leader.address, 'POST', 'transit/keys/app', { type: 'ecdsa-p256' });
    const standby = cluster.nodes.find((n) => n !== leader)!;
    // The standby's health, on Vault and OpenBao alike: 429 plain, 200 with standbyok (what Signet's probe asks, as a
    // standby forwards requests); neither has performance standbys (473) or DR secondaries (472) here.
    const plain = await vaultRaw(standby.address, undefined, 'GET', 'sys/health');
    assert.equal(plain.status, 429);
    assert.equal(plain.body.standby, true);
    assert.equal(plain.body.performance_standby ?? false, false);
    assert.equal((await vaultRaw(standby.address, undefined, 'GET', 'sys/health?standbyok=true&perfstandbyok=true')).status, 200);
    assert.ok(cluster.rootToken.startsWith(BACKEND === 'openbao' ? 's.' : 'hvs.'), 'the init root token\'s form');
    // startSignet needs only the address and a token of the Vault it talks to.
    const target = { address: standby.address, rootToken: cluster.rootToken } as TestVault;
    const signet = await startSignet(target, [{ name: 'app' }], {
      config: { refresh_interval: '1s', vault: { address: standby.address, sign_timeout: '2s', timeout: '2s' } },
      healthIntervalMs: 250,
    });
    try {
      await signet.ready(20_000);
      const jwks = (await signet.get('/.well-known/jwks.json')).body;
      const results: Array<{ at: number; status: number; token?: string }> = [];
      let running = true;
      const workers = Array.from({ length: 4 }, async () => {
        while (running) {
          const at = Date.now();
          const r = await signet.post('/v1/sign/app', { claims: { sub: 'ha' } });
          results.push({ at, status: r.status, token: r.body?.token });
          await sleep(20);
        }
      });
      // Signing under traffic before the active node dies.
      await eventually(() => results.filter((r) => r.status === 200).length >= 8, 20_000, 'signing under traffic', 20);
      const stoppedAt = Date.now();
      await leader.stop('SIGKILL');
      const resumedAt = await eventually(
        () => results.find((r) => r.at > stoppedAt + 200 && r.status === 200)?.at,
        60_000,
        'signing after the election',
      );
      // Signing steadily after the election: eight more tokens.
      await eventually(() => results.filter((r) => r.status === 200 && r.at > resumedAt).length >= 8, 20_000, 'signing goes on after the election', 20);
      running = false;
      await Promise.all(workers);
      // Signing can resume (the standby Signet talks to answers) before /sys/health shows the new active node.
      const newLeader = await eventually(async () => {
        const now = await cluster.leader();
        return now && now !== leader ? now : undefined;
      }, 30_000, 'a new active node');
      assert.ok(newLeader !== leader, 'a new active node');
      const failed = results.filter((r) => r.status !== 200);
      assert.ok(failed.every((r) => r.status === 503), 'failures during the election are 503s');
      const keySet = createLocalJWKSet(jwks);
      const tokens = results.filter((r) => r.status === 200).map((r) => r.token!);
      for (const token of tokens) await jwtVerify(token, keySet, { algorithms: ['ES256'] });
      process.stderr.write(`ha: ${tokens.length} tokens, ${failed.length} 503s, signing resumed ${resumedAt - stoppedAt} ms after the active node stopped\n`);
    } finally {
      await signet.close();
    }
  } finally {
    await cluster.stop();
  }
});
