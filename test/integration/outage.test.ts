// Vault outages against a real file-backed Vault (DESIGN §7): paused (SIGSTOP), killed and restarted. Under
// continuous sign traffic: signs fail fast with 503 + Retry-After within sign_timeout, JWKS and /v1/verify keep
// answering, /readyz goes false then true, signing recovers by itself, and every token Signet returned verifies.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { startSignet, eventually, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const SIGN_TIMEOUT_MS = 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Outcome { at: number; status: number; ms: number; token?: string; retryAfter?: string | null }

/** Four clients signing in a loop until stopped. */
function traffic(signet: TestSignet) {
  const outcomes: Outcome[] = [];
  let running = true;
  const workers = Array.from({ length: 4 }, async () => {
    while (running) {
      const at = Date.now();
      try {
        const response = await signet.post('/v1/sign/app', { claims: { sub: 'outage' } });
        outcomes.push({ at, status: response.status, ms: Date.now() - at, token: response.body?.token, retryAfter: response.headers.get('retry-after') });
      } catch {
        outcomes.push({ at, status: 0, ms: Date.now() - at });
      }
      await sleep(20);
    }
  });
  return {
    outcomes,
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}

describe('Vault outages under traffic (file-backed Vault)', () => {
  let vault: TestVault;
  let signet: TestSignet;
  let jwks: JSONWebKeySet;

  before(async () => {
    vault = await startVault('file');
    await vault.createKey('app', 'ecdsa-p256');
    signet = await startSignet(vault, [{ name: 'app' }], {
      // Tolerance 0: readiness follows Vault at once here (its default tolerance is tested in hardening.test.ts).
      config: { refresh_interval: '1s', vault: { address: vault.address, sign_timeout: '1s', timeout: '1s' }, readiness: { vault_outage_tolerance: '0s' } },
      healthIntervalMs: 250,
    });
    await signet.ready(15_000);
    jwks = (await signet.get('/.well-known/jwks.json')).body;
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  async function checkOutage(name: string, outage: () => Promise<void>, recover: () => Promise<void>) {
    const load = traffic(signet);
    await sleep(500);
    const down = Date.now();
    await outage();
    // While Vault is away: readiness false; JWKS and local verification keep answering.
    await eventually(async () => (await signet.get('/readyz')).status === 503, 5000, `${name}: /readyz false`);
    const jwksWhileDown = await signet.get('/.well-known/jwks.json');
    assert.equal(jwksWhileDown.status, 200);
    assert.deepEqual(jwksWhileDown.body, jwks);
    const earlier = load.outcomes.find((o) => o.status === 200)!.token!;
    assert.equal((await signet.post('/v1/verify', { token: earlier })).status, 200, `${name}: verify keeps working`);
    await sleep(2500);
    const up = Date.now();
    await recover();
    await eventually(async () => (await signet.get('/readyz')).status === 200, 20_000, `${name}: /readyz true again`);
    const readyAgain = Date.now();
    const recovered = await eventually(async () => load.outcomes.find((o) => o.at > up && o.status === 200)?.at, 15_000, `${name}: signing recovers`);
    await sleep(300);
    await load.stop();

    const during = load.outcomes.filter((o) => o.at >= down + 300 && o.at < up);
    assert.ok(during.length > 0, 'requests were made during the outage');
    for (const o of during.filter((x) => x.status !== 200)) {
      assert.equal(o.status, 503, `${name}: only 503 during the outage`);
      assert.ok(o.ms <= SIGN_TIMEOUT_MS + 500, `${name}: a sign answered after ${o.ms} ms`);
      assert.match(o.retryAfter ?? '', /^\d+$/);
    }
    assert.ok(during.some((o) => o.status === 503), `${name}: signs failed during the outage`);
    const failFast = during.filter((o) => o.status === 503 && o.ms < 50).length;
    assert.ok(failFast > 0, `${name}: the circuit made most failures fast (${failFast} of ${during.length} under 50 ms)`);
    // Every token Signet returned verifies: zero invalid tokens.
    const keySet = createLocalJWKSet(jwks);
    const tokens = load.outcomes.filter((o) => o.status === 200).map((o) => o.token!);
    for (const token of tokens) await jwtVerify(token, keySet, { algorithms: ['ES256'] });
    const slowest = Math.max(...during.map((o) => o.ms));
    return {
      requests: load.outcomes.length, tokens: tokens.length, during_outage: during.length, fail_fast_under_50ms: failFast,
      slowest_503_ms: slowest, ready_after_ms: readyAgain - up, signing_after_ms: recovered - up,
    };
  }

  test('paused (SIGSTOP for 3 s, then SIGCONT)', async () => {
    const stats = await checkOutage('pause', async () => vault.pause(), async () => vault.resume());
    process.stderr.write(`pause: ${JSON.stringify(stats)}\n`);
  });

  test('killed, then restarted on the same data (and unsealed)', async () => {
    let restarting: Promise<void> | undefined;
    const stats = await checkOutage('restart', async () => {
      vault.process.kill('SIGKILL');
    }, async () => {
      restarting = vault.restart();
      await restarting;
    });
    process.stderr.write(`restart: ${JSON.stringify(stats)}\n`);
  });
});

describe('load shedding', () => {
  test('queue full: 503 at once, the queue stays bounded', async () => {
    const vault = await startVault();
    try {
      await vault.createKey('app', 'rsa-2048');
      const signet = await startSignet(vault, [{ name: 'app' }], {
        config: { vault: { address: vault.address, sign_timeout: '2s' } },
        batcher: { maxInFlight: 1, maxQueue: 8, maxBatchSize: 1 },
      });
      try {
        await signet.ready(10_000);
        vault.pause();
        const started = Date.now();
        const answers = await Promise.all(Array.from({ length: 40 }, async () => {
          const at = Date.now();
          const r = await signet.post('/v1/sign/app', { claims: {} });
          return { status: r.status, ms: Date.now() - at, error: r.body?.errors?.[0] as string | undefined };
        }));
        vault.resume();
        const shed = answers.filter((a) => a.error?.includes('the sign queue of key "app" is full'));
        assert.equal(shed.length, 40 - 1 - 8, 'one in flight, eight queued, the rest shed');
        for (const a of shed) {
          assert.equal(a.status, 503);
          assert.ok(a.ms < 500, `shed after ${a.ms} ms`);
        }
        // The queued and the in-flight ones give up at sign_timeout (2 s) rather than wait behind each other.
        const waited = answers.filter((a) => !shed.includes(a));
        for (const a of waited) {
          assert.equal(a.status, 503);
          assert.ok(a.ms < 2600, `a queued sign answered after ${a.ms} ms`);
        }
        assert.ok(Date.now() - started < 3000);
        const metrics = (await signet.get('/metrics')).text;
        assert.match(metrics, /signet_shed_requests_total\{reason="overloaded"\} (\d+)/);
        // After the outage, signing works again.
        await eventually(async () => (await signet.post('/v1/sign/app', { claims: {} })).status === 200, 10_000, 'recovery');
      } finally {
        await signet.close();
      }
    } finally {
      vault.resume();
      await vault.stop();
    }
  });
});
