// Vault outages against a real file-backed Vault (DESIGN §7): paused (SIGSTOP), killed and restarted. Under
// continuous sign traffic: signs fail fast with 503 + Retry-After within sign_timeout, JWKS and /v1/verify keep
// answering, /readyz goes false then true, signing recovers by itself, and every token Signet returned verifies.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { startSignet, eventually, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const SIGN_TIMEOUT_MS = 1000;
const HEALTH_INTERVAL_MS = 250;
/** How long Vault stays away in each outage. */
const OUTAGE_MS = 3000;
/** The breaker's longest cooldown (src/vault/breaker.ts DEFAULT_BREAKER, README: "at most 2 s"). */
const MAX_COOLDOWN_MS = 2000;
/** README: /readyz is 200 again within one probe; a probe cycle is the interval plus the probe's own timeout. */
const READY_BOUND_MS = 2 * HEALTH_INTERVAL_MS;
/**
 * Margins for a loaded 2-core CI (four test suites and their Vaults sharing it):
 * - LATE: Signet gives up at sign_timeout; the 503 still has to be written and read by a client in the same busy
 *   process, behind the other three clients' turns and the test's own polls: event-loop turns of 100-300 ms were
 *   seen on this machine under load, so 500 ms.
 * - RECOVERY: after Vault answers, the probe, /readyz or the first sign wait for their next turn of Signet's event
 *   loop and the client's 20 ms pause and poll; 1 s is two such loaded turns beyond the bound and still well below
 *   the 15-20 s the test allowed before.
 */
const LATE_MARGIN_MS = 500;
const RECOVERY_MARGIN_MS = 1000;
/** Share of the failures with the circuit open answered in under 50 ms (README: 317 of 318 in one run). */
const FAST_SHARE = 0.9;
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
      healthIntervalMs: HEALTH_INTERVAL_MS,
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
    const mark = signet.logs.length;
    await eventually(() => load.outcomes.filter((o) => o.status === 200).length >= 8, 10_000, `${name}: signing under traffic`, 20);
    const down = Date.now();
    await outage();
    // While Vault is away: readiness false; JWKS and local verification keep answering.
    await eventually(async () => (await signet.get('/readyz')).status === 503, 5000, `${name}: /readyz false`, 20);
    const jwksWhileDown = await signet.get('/.well-known/jwks.json');
    assert.equal(jwksWhileDown.status, 200);
    assert.deepEqual(jwksWhileDown.body, jwks);
    const earlier = load.outcomes.find((o) => o.status === 200)!.token!;
    assert.equal((await signet.post('/v1/verify', { token: earlier })).status, 200, `${name}: verify keeps working`);
    // The circuit opens (its log line), then sheds signs; Vault stays away for OUTAGE_MS in all.
    const opened = await signet.waitForLog(/"event":"circuit".*"state":"open"/, 10_000, mark);
    const openedAt = Date.parse(opened.line.time);
    await eventually(() => Date.now() - down >= OUTAGE_MS && load.outcomes.filter((o) => o.at >= openedAt && o.status === 503).length >= 20,
      15_000, `${name}: ${OUTAGE_MS} ms of outage with signs shed by the open circuit`, 20);
    await recover();
    // The clock starts when Vault can answer again: SIGCONT sent, or the restarted server unsealed and active.
    const up = Date.now();
    const readyAgain = await eventually(async () => (await signet.get('/readyz')).status === 200 && Date.now(), 20_000, `${name}: /readyz true again`, 20);
    const recovered = await eventually(() => load.outcomes.find((o) => o.status === 200 && o.at + o.ms > up), 15_000, `${name}: signing recovers`, 20);
    // Signing steadily again: eight more tokens after the first.
    await eventually(() => load.outcomes.filter((o) => o.status === 200 && o.at > recovered.at).length >= 8, 10_000, `${name}: signing goes on`, 20);
    await load.stop();

    // Every answer of the whole run, before, during, across recovery and after: a token, or the documented 503 with
    // Retry-After; never a 500/502 or a dropped connection (status 0), and never later than sign_timeout.
    for (const o of load.outcomes) {
      const when = `${name}: the sign sent ${o.at - down} ms after the outage began`;
      assert.ok(o.status === 200 || o.status === 503, `${when} answered ${o.status}`);
      if (o.status === 503) assert.match(o.retryAfter ?? '', /^\d+$/, `${when}: 503 without Retry-After`);
      assert.ok(o.ms <= SIGN_TIMEOUT_MS + LATE_MARGIN_MS, `${when} answered after ${o.ms} ms`);
    }
    const during = load.outcomes.filter((o) => o.at >= down && o.at < up);
    assert.ok(during.some((o) => o.status === 503), `${name}: signs failed during the outage`);
    // Once the circuit is open, most failures are fast: the half-open probes (one per cooldown) and the calls
    // already waiting on Vault are the only slow ones.
    const shed = during.filter((o) => o.at >= openedAt && o.status === 503);
    const failFast = shed.filter((o) => o.ms < 50).length;
    assert.ok(failFast / shed.length >= FAST_SHARE, `${name}: ${failFast} of ${shed.length} failures with the circuit open under 50 ms (at least ${FAST_SHARE * 100} %)`);
    // Every token Signet returned verifies: zero invalid tokens.
    const keySet = createLocalJWKSet(jwks);
    const tokens = load.outcomes.filter((o) => o.status === 200).map((o) => o.token!);
    for (const token of tokens) await jwtVerify(token, keySet, { algorithms: ['ES256'] });
    const stats = {
      requests: load.outcomes.length, tokens: tokens.length, during_outage: during.length, shed_with_circuit_open: shed.length, fail_fast_under_50ms: failFast,
      slowest_503_ms: Math.max(...load.outcomes.filter((o) => o.status === 503).map((o) => o.ms)), ready_after_ms: readyAgain - up, signing_after_ms: recovered.at + recovered.ms - up,
    };
    process.stderr.write(`${name}: ${JSON.stringify(stats)}\n`);
    // README (Vault access, auth and outages): no sign waits longer than sign_timeout; signing resumes at the next
    // health probe or when the breaker's cooldown (at most 2 s) lets a sign through; /readyz follows the probe.
    assert.ok(stats.slowest_503_ms <= SIGN_TIMEOUT_MS + LATE_MARGIN_MS, `${name}: slowest 503 after ${stats.slowest_503_ms} ms`);
    assert.ok(stats.signing_after_ms <= MAX_COOLDOWN_MS + RECOVERY_MARGIN_MS, `${name}: signing resumed ${stats.signing_after_ms} ms after Vault returned`);
    assert.ok(stats.ready_after_ms <= READY_BOUND_MS + RECOVERY_MARGIN_MS, `${name}: /readyz 200 ${stats.ready_after_ms} ms after Vault returned`);
    return stats;
  }

  test('paused (SIGSTOP for 3 s, then SIGCONT)', async () => {
    await checkOutage('pause', async () => vault.pause(), async () => vault.resume());
  });

  test('killed, then restarted on the same data (and unsealed)', async () => {
    await checkOutage('restart', async () => {
      vault.process.kill('SIGKILL');
    }, () => vault.restart());
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
