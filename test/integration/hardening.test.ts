// Fault paths under concurrent load, against a real Vault (issue 10): each test drives 32+ signing clients while
// one fault repeats, and asserts what a caller relies on: every failure is a 503 with Retry-After, no sign hangs past
// sign_timeout, signing recovers by itself, and Signet does no more work against Vault than the fault needs.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { buildConfig } from '../../src/config.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { serve } from '../../src/server.ts';
import { badFailures, signLoad } from '../harness/load.ts';
import { eventually, recordLag, startSignet, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), 'signet-hardening-'));
const logins = (signet: TestSignet) => signet.logs.filter((l) => l.includes('"event":"authenticated"')).length;

const POLICY = `
path "transit/sign/app/*" { capabilities = ["update"] }
path "transit/keys/*" { capabilities = ["read"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
`;

describe('auth under concurrent load (AppRole)', () => {
  let vault: TestVault;
  let signet: TestSignet;
  let secretId: string;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
    await vault.createKey('denied', 'ecdsa-p256');
    await vault.api('PUT', 'sys/policies/acl/signet', { policy: POLICY });
    await vault.api('POST', 'sys/auth/approle', { type: 'approle' });
    await vault.api('POST', 'auth/approle/role/signet', { token_policies: ['signet'], token_ttl: '1h', token_max_ttl: '2h' });
    const roleId = ((await vault.api('GET', 'auth/approle/role/signet/role-id')).data as { role_id: string }).role_id;
    secretId = ((await vault.api('POST', 'auth/approle/role/signet/secret-id', {})).data as { secret_id: string }).secret_id;
    const secretIdFile = join(dir, 'secret-id');
    writeFileSync(secretIdFile, secretId);
    signet = await startSignet(vault, [{ name: 'app' }, { name: 'denied' }], {
      config: { vault: { address: vault.address, sign_timeout: '2s', auth: { method: 'approle', role_id: roleId, secret_id_file: secretIdFile } } },
    });
    await signet.ready(15_000);
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  test('the token revoked every 2.5 s under 48 clients: one login per revocation, every sign answered within sign_timeout, recovery each time', async () => {
    const loginsBefore = logins(signet);
    const load = signLoad(signet.url, { clients: 48 });
    const revokedAt: number[] = [];
    let mark = 0;
    for (let i = 0; i < 4; i++) {
      // The scenario: a revocation every 2.5 s.
      await sleep(2500);
      revokedAt.push(load.elapsed());
      mark = signet.logs.length;
      await vault.api('POST', 'auth/token/revoke', { token: signet.app.services.auth.current() });
    }
    // The calm after the last revocation begins once Signet has logged in again and a sign has succeeded after it;
    // it lasts for the next 200 answers.
    await signet.waitForLog(/"event":"authenticated"/, 15_000, mark);
    const lastRevocation = revokedAt.at(-1)!;
    await eventually(() => load.outcomes.some((o) => o.status === 200 && o.at > lastRevocation + 50), 15_000, 'a sign after the last revocation', 20);
    const calmFrom = load.elapsed();
    await eventually(() => load.outcomes.filter((o) => o.at >= calmFrom).length >= 200, 30_000, '200 answers in the calm', 20);
    const outcomes = await load.stop();
    assert.deepEqual(badFailures(outcomes), [], 'every failure is a 503 with Retry-After');
    const slowest = Math.max(...outcomes.map((o) => o.ms));
    assert.ok(slowest < 2000 + 500, `no sign waits past sign_timeout (2 s) + 0.5 s; slowest ${Math.round(slowest)} ms`);
    const recoveries = revokedAt.map((at) => {
      const next = outcomes.find((o) => o.status === 200 && o.at > at + 50);
      assert.ok(next, `a sign succeeded after the revocation at ${Math.round(at)} ms`);
      return Math.round(next.at + next.ms - at);
    });
    const calm = outcomes.filter((o) => o.at >= calmFrom);
    const calmErrors = [...new Set(calm.filter((o) => o.status !== 200).map((o) => o.error))];
    const authEvents = signet.logs.filter((l) => l.includes('vault-auth')).map((l) => /"event":"([a-z_]+)"/.exec(l)?.[1]).join(' ');
    assert.ok(calm.length > 0 && calm.every((o) => o.status === 200),
      `after the last revocation every sign succeeds (${calm.filter((o) => o.status !== 200).length} of ${calm.length} failed: ${calmErrors.join(' | ')}; auth events: ${authEvents})`);
    const newLogins = logins(signet) - loginsBefore;
    const failed = outcomes.filter((o) => o.status !== 200).length;
    process.stderr.write(`revocations: ${revokedAt.length} logins=${newLogins} signs=${outcomes.length} failed=${failed} recovery_ms=${recoveries.join(',')} slowest_ms=${Math.round(slowest)}` + '\n');
    assert.equal(newLogins, revokedAt.length, 'exactly one login per revocation (no login storm, none missed)');
    assert.ok(Math.max(...recoveries) < 2000, `signing resumed within 2 s of each revocation (${recoveries.join(', ')} ms)`);
    assert.equal((await signet.get('/readyz')).body.vault.authenticated, true);
    for (const line of signet.logs) assert.ok(!line.includes(secretId) && !line.includes(signet.app.services.auth.current()), 'no secret in the logs');
  });

  test('a policy that denies one key: 503 naming the policy, no login, the token stays authenticated, other keys keep signing', async () => {
    const loginsBefore = logins(signet);
    const good = signLoad(signet.url, { clients: 16 });
    const denied = signLoad(signet.url, { clients: 16, path: '/v1/sign/denied' });
    const readiness: number[] = [];
    for (let i = 0; i < 10; i++) {
      await sleep(200);
      readiness.push((await signet.get('/readyz')).status);
    }
    const [ok, refused] = [await good.stop(), await denied.stop()];
    assert.ok(ok.length > 50 && ok.every((o) => o.status === 200), 'the allowed key signs throughout');
    assert.ok(refused.length > 10 && refused.every((o) => o.status === 503 && o.retryAfter), 'the denied key: 503 with Retry-After');
    assert.match(refused[0]!.error!, /permission denied\) although Signet's token is valid: the token's policy lacks transit\/sign\/denied; see vault-policy\.hcl/);
    assert.equal(logins(signet), loginsBefore, 'a permission-denied 403 triggers no login');
    assert.deepEqual([...new Set(readiness)], [200], 'readiness stays true');
    assert.equal(signet.app.services.auth.status().authenticated, true);
    const lookups = signet.logs.filter((l) => l.includes('"event":"permission_denied"')).length;
    process.stderr.write(`permission denied: ${refused.length} refused signs, ${lookups} token lookups` + '\n');
    assert.ok(lookups <= Math.ceil(2000 / 500) + 2, `the token is looked up at most once per ${500} ms while denials go on (${lookups})`);
  });
});

describe('overload is not an outage (RSA-4096, sign_timeout 1 s)', () => {
  let vault: TestVault;
  let signet: TestSignet;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'rsa-4096');
    signet = await startSignet(vault, [{ name: 'app' }], {
      config: { vault: { address: vault.address, sign_timeout: '1s' }, log_level: 'info' }, healthIntervalMs: 250,
    });
    await signet.ready(15_000);
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  async function phase(clients: number, ms: number) {
    // Clients honour Retry-After (1 s) after a 503, as a well-behaved caller does: 640 clients retrying at once in
    // this same process would take the 2 cores from Vault and measure the load generator instead of Signet.
    const load = signLoad(signet.url, { clients, pauseAfterFailureMs: 1000 });
    const readiness: number[] = [];
    const circuit: string[] = [];
    const limits: number[] = [];
    // Whether Signet had a call at Vault, every 50 ms: what "Vault is kept busy" means, whatever CPU it gets.
    const busy: boolean[] = [];
    const sampler = setInterval(() => busy.push(signet.app.services.batcher.inFlight('app') > 0), 50);
    const started = Date.now();
    while (Date.now() - started < ms) {
      await sleep(250);
      readiness.push((await signet.get('/readyz')).status);
      circuit.push(signet.app.services.http.breaker.state);
      limits.push(signet.app.services.batcher.callLimit('app'));
    }
    clearInterval(sampler);
    const outcomes = await load.stop();
    const seconds = load.elapsed() / 1000;
    const occupancy = busy.filter(Boolean).length / Math.max(1, busy.length);
    return { outcomes, readiness, circuit, limits, occupancy, goodput: outcomes.filter((o) => o.status === 200).length / seconds };
  }

  test('640 clients against a healthy Vault: the circuit stays closed, readiness stays true, refusals say Signet is overloaded, goodput holds', async () => {
    const moderate = await phase(32, 4000);
    const heavy = await phase(640, 5000);
    const refused = heavy.outcomes.filter((o) => o.status !== 200);
    process.stderr.write(`overload: goodput 32 clients ${moderate.goodput.toFixed(0)}/s, 640 clients ${heavy.goodput.toFixed(0)}/s `
      + `(${(heavy.goodput / moderate.goodput).toFixed(2)}); refused ${refused.length} of ${heavy.outcomes.length}; calls limit at 640 clients ${Math.min(...heavy.limits)}-${Math.max(...heavy.limits)}; `
      + `a call at Vault ${(100 * heavy.occupancy).toFixed(0)} % of the time` + '\n');
    assert.deepEqual(badFailures(heavy.outcomes), []);
    // A sign sent with enough time left can still outlive its deadline when Vault slows down (another test runs
    // beside this one on CI's 2 cores): that 503 rightly says Vault did not answer in time. The rest name Signet.
    const named = refused.filter((o) => /Signet is overloaded/.test(o.error ?? '')).length;
    assert.ok(named >= 0.9 * refused.length, `at least 90 % of refusals name Signet's overload (${named} of ${refused.length}): ${refused.find((o) => !/Signet is overloaded/.test(o.error ?? ''))?.error}`);
    assert.ok(!refused.some((o) => /failed repeatedly/.test(o.error ?? '')), 'no refusal comes from an open circuit');
    assert.deepEqual([...new Set(heavy.circuit)], ['closed'], 'the circuit never opened');
    assert.deepEqual([...new Set(heavy.readiness)], [200], 'readiness never failed');
    assert.equal(signet.logs.filter((l) => l.includes('"event":"circuit"')).length, 0);
    // Vault is kept busy: under 20x the clients Signet has a call at Vault nearly all the time (before the fix the
    // circuit opened instead and Vault sat idle). Measured as occupancy, not as goodput against the 32-client
    // phase: CI runs another test file beside this one, and when that is the 3-node Raft test the CPU left to this
    // Vault differs between the two phases (goodput ratios 0.36-0.96 were measured, alone 0.81-0.96).
    assert.ok(heavy.occupancy >= 0.9, `a call was at Vault ${(100 * heavy.occupancy).toFixed(0)} % of the time at 640 clients (at least 90 %)`);
    // And signing does not collapse: what Vault signs still reaches callers in time.
    assert.ok(heavy.goodput >= 0.2 * moderate.goodput, `goodput at 640 clients (${heavy.goodput.toFixed(0)}/s) at least 0.2 of that at 32 (${moderate.goodput.toFixed(0)}/s)`);
  });
});

describe('RSA-2048 signs from many clients: a batch is full by its Vault work', () => {
  const SIGN_TIMEOUT_MS = 1000;
  /** After Signet gives up at sign_timeout: the 503 written and read, on a loaded 2-core CI (batch-faults.test.ts). */
  const LATE_MARGIN_MS = 1000;
  /** The breaker's longest cooldown (src/vault/breaker.ts), and Vault's first answers after SIGCONT (outage.test.ts). */
  const RECOVERY_BOUND_MS = 2000 + 500;
  let vault: TestVault;
  let signet: TestSignet;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'rsa-2048');
    signet = await startSignet(vault, [{ name: 'app' }], {
      config: { vault: { address: vault.address, sign_timeout: `${SIGN_TIMEOUT_MS / 1000}s`, timeout: '1s' } }, healthIntervalMs: 250,
    });
    await signet.ready(15_000);
  });
  after(async () => {
    vault?.resume();
    await signet?.close();
    await vault?.stop();
  });

  /** Every 5 ms for `ms`: Signet's calls at Vault for the key, and its signs waiting. */
  async function sampleCalls(ms: number): Promise<Array<{ inFlight: number; queued: number }>> {
    const samples: Array<{ inFlight: number; queued: number }> = [];
    const { batcher } = signet.app.services;
    const timer = setInterval(() => samples.push({ inFlight: batcher.inFlight('app'), queued: batcher.queued('app') }), 5);
    await sleep(ms);
    clearInterval(timer);
    return samples;
  }

  // 12 clients never queue 16 signs (the old full batch, 24 ms of Vault work) behind the one partial call, so their
  // signs went out one call at a time and one of Vault's cores idled: batching on signed about half the tokens/s of
  // batching off (npm run bench, RS256 (d) against (c) at 4 and 16 clients). 3 signs are a full batch's work now.
  test('12 clients signing one token each: while signs wait, two calls or more are at Vault', async () => {
    const load = signLoad(signet.url, { clients: 12 });
    let stopped = false;
    try {
      await eventually(() => load.outcomes.filter((o) => o.status === 200).length >= 48, 15_000, 'signing under load', 20);
      const samples = await sampleCalls(2000);
      const waiting = samples.filter((s) => s.queued > 0);
      const two = waiting.filter((s) => s.inFlight >= 2).length;
      const outcomes = await load.stop();
      stopped = true;
      process.stderr.write(`rsa-2048, 12 clients: ${waiting.length} of ${samples.length} samples with signs waiting, ${two} of them with two calls or more at Vault; `
        + `${outcomes.filter((o) => o.status === 200).length} tokens in ${(load.elapsed() / 1000).toFixed(1)} s\n`);
      assert.deepEqual(badFailures(outcomes), []);
      assert.ok(waiting.length >= 20, `signs waited in ${waiting.length} samples: the load kept the key busy`);
      assert.ok(two >= 0.5 * waiting.length, `two calls or more at Vault in ${two} of the ${waiting.length} samples with signs waiting (at least half)`);
    } finally {
      if (!stopped) await load.stop();
    }
  });

  test('32 clients, Vault paused (SIGSTOP) for 1.5 s three times: every sign answered within sign_timeout, signing recovers each time', { timeout: 120_000 }, async () => {
    const startedAt = Date.now();
    const lag = recordLag();
    const load = signLoad(signet.url, { clients: 32 });
    const recoveries: number[] = [];
    try {
      await eventually(() => load.outcomes.filter((o) => o.status === 200).length >= 64, 15_000, 'signing under load', 20);
      for (let pause = 0; pause < 3; pause++) {
        vault.pause();
        await sleep(1500);
        vault.resume();
        const up = Date.now() - startedAt;
        const first = await eventually(() => load.outcomes.find((o) => o.at > up && o.status === 200), 15_000, `signing after pause ${pause + 1}`, 20);
        const signedAt = startedAt + first.at + first.ms;
        recoveries.push(signedAt - (startedAt + up) - lag.within(startedAt + up, signedAt));
        await eventually(() => load.outcomes.filter((o) => o.at > first.at && o.status === 200).length >= 32, 15_000, `signing goes on after pause ${pause + 1}`, 20);
      }
    } finally {
      vault.resume();
    }
    const outcomes = await load.stop();
    lag.stop();
    const late = outcomes.map((o) => ({ o, run: o.ms - lag.within(startedAt + o.at, startedAt + o.at + o.ms) })).filter(({ run }) => run > SIGN_TIMEOUT_MS + LATE_MARGIN_MS);
    const tokens = outcomes.filter((o) => o.status === 200).map((o) => o.token!);
    process.stderr.write(`rsa-2048, 32 clients, 3 pauses: ${outcomes.length} answers, ${tokens.length} tokens, ${outcomes.filter((o) => o.status === 503).length} 503s; `
      + `first token after each resume in ${recoveries.map((ms) => Math.round(ms)).join(', ')} ms (event-loop stalls taken out)\n`);
    assert.deepEqual(badFailures(outcomes), []);
    assert.ok(outcomes.some((o) => o.status === 503), 'signs failed while Vault was paused');
    assert.deepEqual(late.slice(0, 3).map(({ o, run }) => `${o.status} after ${Math.round(o.ms)} ms (${Math.round(run)} ms of it with the loop running)`), [],
      `answered within sign_timeout + ${LATE_MARGIN_MS} ms`);
    for (const ms of recoveries) assert.ok(ms <= RECOVERY_BOUND_MS, `a token ${Math.round(ms)} ms after Vault resumed (at most ${RECOVERY_BOUND_MS})`);
    const keySet = createLocalJWKSet((await signet.get('/.well-known/jwks.json')).body as JSONWebKeySet);
    for (const token of tokens) await jwtVerify(token, keySet, { algorithms: ['RS256'] });
  });
});

describe('one process-wide bound on pending signs (batching.max_pending_bytes)', () => {
  let vault: TestVault;
  let signet: TestSignet;

  before(async () => {
    vault = await startVault();
    for (const name of ['k1', 'k2', 'k3']) await vault.createKey(name, 'ecdsa-p256');
    signet = await startSignet(vault, [{ name: 'k1' }, { name: 'k2' }, { name: 'k3' }], {
      config: { vault: { address: vault.address, sign_timeout: '4s' }, batching: { max_pending_bytes: 1024 * 1024 } },
    });
    await signet.ready(15_000);
  });
  after(async () => {
    vault?.resume();
    await signet?.close();
    await vault?.stop();
  });

  test('a burst of 16 KiB bodies over three keys with Vault stalled: the bound holds, the rest is refused at once, and all drains', async () => {
    const claims = { a: 'x'.repeat(3000), b: 'y'.repeat(3000), c: 'z'.repeat(3000), d: 'w'.repeat(3000) };
    vault.pause();
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, signet.app.services.batcher.pendingBytes());
    }, 5);
    try {
      const started = performance.now();
      const answers = await Promise.all(Array.from({ length: 150 }, async (_, i) => {
        const sent = performance.now();
        const promise = signet.post(`/v1/sign/k${(i % 3) + 1}`, { claims: { sub: `s${i}`, ...claims } });
        if (i === 149) setTimeout(() => vault.resume(), 1500);
        const r = await promise;
        return { status: r.status, ms: performance.now() - sent, error: r.body?.errors?.[0] as string | undefined, retryAfter: r.headers.get('retry-after') };
      }));
      const refused = answers.filter((a) => a.status === 503 && /batching\.max_pending_bytes/.test(a.error ?? ''));
      const signed = answers.filter((a) => a.status === 200);
      process.stderr.write(`pending bound: ${signed.length} signed, ${refused.length} refused at the bound, peak ${peak} bytes, ${Math.round(performance.now() - started)} ms` + '\n');
      assert.ok(peak <= 1024 * 1024, `pending bytes never exceeded the bound (${peak})`);
      assert.ok(refused.length > 0 && signed.length > 0, 'the bound was reached, and what it held was signed');
      const others = [...new Set(answers.filter((a) => !signed.includes(a) && !refused.includes(a)).map((a) => `${a.status} ${a.error}`))];
      assert.equal(signed.length + refused.length, answers.length, `nothing else happened: ${others.join(' | ')}`);
      assert.ok(refused.every((a) => a.ms < 1000 && a.retryAfter), `refusals at the bound are immediate, with Retry-After (slowest ${Math.round(Math.max(...refused.map((a) => a.ms)))} ms)`);
      assert.equal(signet.app.services.batcher.pendingBytes(), 0, 'everything drained');
    } finally {
      clearInterval(sampler);
      vault.resume();
    }
  });
});

describe('readiness is the pod\'s: a short Vault outage does not flip it', () => {
  let vault: TestVault;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
  });
  after(async () => {
    vault?.resume();
    await vault?.stop();
  });

  test('default tolerance (5m): Vault stopped for 3 s under 32 clients; /readyz stays 200 while signs fail fast, details say why', async () => {
    const signet = await startSignet(vault, [{ name: 'app' }], { config: { vault: { address: vault.address, sign_timeout: '1s', timeout: '1s' } }, healthIntervalMs: 250 });
    try {
      await signet.ready();
      const load = signLoad(signet.url, { clients: 32 });
      // Signing under load (each client answered about once) before Vault stops.
      await eventually(() => load.outcomes.filter((o) => o.status === 200).length >= 32, 15_000, 'signing under load', 20);
      vault.pause();
      const statuses: number[] = [];
      let sawUnusable = false;
      for (let i = 0; i < 12; i++) {
        await sleep(250);
        const r = await signet.get('/readyz');
        statuses.push(r.status);
        if (r.body.vault.usable === false && r.body.vault.unusable_for_seconds > 0) sawUnusable = true;
      }
      vault.resume();
      await eventually(async () => (await signet.post('/v1/sign/app', { claims: {} })).status === 200, 10_000, 'signing again');
      const outcomes = await load.stop();
      assert.deepEqual(badFailures(outcomes), []);
      assert.ok(outcomes.some((o) => o.status === 503), 'signs failed during the outage');
      assert.deepEqual([...new Set(statuses)], [200], 'readiness stayed true');
      assert.ok(sawUnusable, '/readyz says Vault is unusable, and for how long');
    } finally {
      await signet.close();
    }
  });

  test('tolerance 1s: readiness fails once Vault has been away that long, and returns with it', async () => {
    const signet = await startSignet(vault, [{ name: 'app' }], {
      config: { vault: { address: vault.address, sign_timeout: '1s', timeout: '1s' }, readiness: { vault_outage_tolerance: '1s' } }, healthIntervalMs: 250,
    });
    try {
      await signet.ready();
      vault.pause();
      const down = Date.now();
      await eventually(async () => (await signet.get('/readyz')).status === 503, 10_000, 'readiness false');
      const after = Date.now() - down;
      assert.ok(after >= 1000, `not before the tolerance (${after} ms)`);
      vault.resume();
      await eventually(async () => (await signet.get('/readyz')).status === 200, 10_000, 'readiness true again');
    } finally {
      vault.resume();
      await signet.close();
    }
  });

  test('start-up with Vault stopped: health probe, auth and key reads run concurrently (one timeout, not three)', async () => {
    vault.pause();
    try {
      const started = performance.now();
      const signet = await startSignet(vault, [{ name: 'app' }], { config: { vault: { address: vault.address, timeout: '2s', sign_timeout: '1s' } } });
      const took = performance.now() - started;
      try {
        process.stderr.write(`start-up with Vault stopped: ${Math.round(took)} ms (vault.timeout 2 s)` + '\n');
        assert.ok(took < 2 * 2000, `start-up took ${Math.round(took)} ms, less than two control-plane timeouts`);
        assert.equal((await signet.get('/readyz')).body.started, false);
        vault.resume();
        await signet.ready(15_000);
      } finally {
        await signet.close();
      }
    } finally {
      vault.resume();
    }
  });
});

describe('claims and token rules (RFC 8725)', () => {
  let vault: TestVault;
  let signet: TestSignet;
  let jwks: JSONWebKeySet;

  before(async () => {
    vault = await startVault();
    for (const name of ['aud', 'open', 'at', 'es256', 'es384', 'es512']) {
      await vault.createKey(name, name === 'es384' ? 'ecdsa-p384' : name === 'es512' ? 'ecdsa-p521' : 'ecdsa-p256');
    }
    signet = await startSignet(vault, [
      { name: 'aud', audiences: ['api'] },
      { name: 'open', audiences: ['api'], require_audience: false },
      { name: 'at', allowed_typ: ['at+jwt'] },
      { name: 'es256' }, { name: 'es384' }, { name: 'es512' },
    ]);
    await signet.ready(15_000);
    jwks = (await signet.get('/.well-known/jwks.json')).body;
  });
  after(async () => {
    await signet?.close();
    await vault?.stop();
  });

  test('a key with an audience allow-list refuses a token without aud, unless require_audience: false', async () => {
    const missing = await signet.post('/v1/sign/aud', { claims: { sub: 'u' } });
    assert.equal(missing.status, 403);
    assert.deepEqual(missing.body.errors, ['claim aud: required by this key (it restricts audiences; keys[].require_audience)']);
    const signed = await signet.post('/v1/sign/aud', { claims: { sub: 'u', aud: 'api' } });
    assert.equal(signed.status, 200);
    // The answer holds the token and its metadata only (the signed claims the signer keeps for auditing stay inside).
    assert.deepEqual(Object.keys(signed.body).sort(), ['alg', 'expires_at', 'key', 'key_version', 'kid', 'token']);
    const open = await signet.post('/v1/sign/open', { claims: { sub: 'u' } });
    assert.equal(open.status, 200);
  });

  test('/v1/verify pinned to a key refuses a token of another configured key', async () => {
    const token = (await signet.post('/v1/sign/es256', { claims: { sub: 'u' } })).body.token;
    assert.equal((await signet.post('/v1/verify', { token, key: 'es256' })).status, 200);
    const other = await signet.post('/v1/verify', { token, key: 'es384' });
    assert.equal(other.status, 401);
    assert.deepEqual(other.body.errors, ['header kid: the token is not signed by the requested key']);
  });

  test('explicit typing: a key signs and accepts only its allowed_typ', async () => {
    const refused = await signet.post('/v1/sign/at', { claims: { sub: 'u' }, headers: { typ: 'JWT' } });
    assert.equal(refused.status, 403);
    assert.match(refused.body.errors[0], /header typ: not one of this key's allowed_typ \(at\+jwt\)/);
    const signed = await signet.post('/v1/sign/at', { claims: { sub: 'u' } });
    assert.equal(signed.status, 200);
    assert.equal(JSON.parse(Buffer.from(signed.body.token.split('.')[0], 'base64url').toString()).typ, 'at+jwt');
    assert.equal((await signet.post('/v1/verify', { token: signed.body.token })).status, 200);
    // A JWT-typed token of the ES256 key is fine for that key; an at+jwt of it would not be (it never signs one).
    const jwtTyped = await signet.post('/v1/sign/es256', { claims: { sub: 'u' }, headers: { typ: 'at+jwt' } });
    assert.equal(jwtTyped.status, 403);
  });

  for (const name of ['es256', 'es384', 'es512'] as const) {
    test(`${name}: every token Signet returns has a low-S signature; its high-S twin is refused by /v1/verify (jose accepts both)`, async () => {
      const order = {
        es256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
        es384: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
        es512: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
      }[name];
      const keySet = createLocalJWKSet(jwks);
      const tokens = await Promise.all(Array.from({ length: 24 }, async () => (await signet.post(`/v1/sign/${name}`, { claims: { sub: 'u' } })).body.token as string));
      for (const token of tokens) {
        const [h, p, sig] = token.split('.') as [string, string, string];
        const bytes = Buffer.from(sig, 'base64url');
        const half = bytes.length / 2;
        const s = BigInt(`0x${bytes.subarray(half).toString('hex')}`);
        assert.ok(s <= order >> 1n, 'low-S');
        const twin = Buffer.concat([bytes.subarray(0, half), Buffer.from((order - s).toString(16).padStart(half * 2, '0'), 'hex')]);
        const twinToken = `${h}.${p}.${twin.toString('base64url')}`;
        await jwtVerify(twinToken, keySet);
        assert.equal((await signet.post('/v1/verify', { token })).status, 200);
        const refused = await signet.post('/v1/verify', { token: twinToken });
        assert.equal(refused.status, 401);
        assert.deepEqual(refused.body.errors, ['signature: does not verify']);
      }
    });
  }

  test('a token whose header is not valid UTF-8 is refused as such, not read with replacement characters', async () => {
    const token = (await signet.post('/v1/sign/es256', { claims: { sub: 'u' } })).body.token as string;
    const [h, p, s] = token.split('.') as [string, string, string];
    const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, string>;
    // The same header with a member whose bytes are not UTF-8 (0xff 0xfe): a lenient decoder reads U+FFFD.
    const raw = Buffer.concat([Buffer.from(JSON.stringify({ ...header, x: '' }).slice(0, -2)), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    const r = await signet.post('/v1/verify', { token: `${raw.toString('base64url')}.${p}.${s}` });
    assert.equal(r.status, 401);
    assert.deepEqual(r.body.errors, ['header is not base64url-encoded JSON']);
  });
});

describe('HMAC keys after min_encryption_version is raised', () => {
  let vault: TestVault;

  before(async () => {
    vault = await startVault();
    await vault.createKey('hs', 'hmac');
  });
  after(async () => vault?.stop());

  test('a fresh instance becomes ready and signs; tokens of versions Vault will not fingerprint still verify', async () => {
    const first = await startSignet(vault, [{ name: 'hs', alg: 'HS256' }], { config: { refresh_interval: '1s' } });
    let oldToken: string;
    try {
      await first.ready();
      oldToken = (await first.post('/v1/sign/hs', { claims: { sub: 'u' } })).body.token;
      await vault.rotate('hs');
      await vault.rotate('hs');
      await vault.configKey('hs', { min_encryption_version: 3 });
    } finally {
      await first.close();
    }
    const fresh = await startSignet(vault, [{ name: 'hs', alg: 'HS256' }], { config: { refresh_interval: '1s' } });
    try {
      await fresh.ready(10_000);
      const signed = await fresh.post('/v1/sign/hs', { claims: { sub: 'u' } });
      assert.equal(signed.status, 200);
      assert.equal(signed.body.key_version, 3);
      assert.equal((await fresh.post('/v1/verify', { token: signed.body.token })).status, 200);
      const old = await fresh.post('/v1/verify', { token: oldToken });
      assert.equal(old.status, 200, `a v1 token verifies: ${JSON.stringify(old.body)}`);
      assert.equal(old.body.key_version, 1);
      assert.ok(fresh.logs.some((l) => l.includes('"event":"hmac_version_unidentified"') && l.includes('"version":1')), 'a log line says which version and why');
      // Fingerprints are computed once per version: later refreshes compute one (the newest) per key.
      const metric = async () => {
        const text = (await fresh.get('/metrics')).text;
        return Number(/signet_vault_requests_total\{operation="hmac",outcome="ok"\} (\d+)/.exec(text)?.[1] ?? 0);
      };
      const before = await metric();
      await sleep(3200);
      const perRefresh = (await metric()) - before;
      assert.ok(perRefresh <= 4, `about one fingerprint per refresh (1 s), not one per version (${perRefresh} in 3.2 s)`);
    } finally {
      await fresh.close();
    }
  });
});

describe('a stale unix socket', () => {
  let vault: TestVault;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
  });
  after(async () => vault?.stop());

  function config(path: string) {
    return buildConfig({ listen: `unix:${path}`, vault: { address: vault.address }, keys: [{ name: 'app', issuer: 'https://i' }], log_level: 'warn' }, { VAULT_TOKEN: vault.rootToken });
  }

  test('a socket left by a killed process is replaced; a live one stops start-up with a clear error', async () => {
    const path = join(dir, 'stale.sock');
    // A process that listens, then dies by SIGKILL: its socket file stays behind.
    const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    assert.ok(existsSync(path), 'the killed process left its socket');
    const running = await serve(config(path), { logger: createLogger('silent') });
    try {
      const r = await fetch('http://localhost/healthz', { dispatcher: new (await import('undici')).Agent({ connect: { socketPath: path } }) } as RequestInit);
      assert.equal(r.status, 200);
    } finally {
      await running.close();
    }

    const livePath = join(dir, 'live.sock');
    const other = createServer().listen(livePath);
    await new Promise((resolve) => other.once('listening', resolve));
    try {
      await assert.rejects(serve(config(livePath), { logger: createLogger('silent') }),
        /configuration: listen: .*live\.sock: another process is listening on this socket \(another Signet\?\); stop it or choose another path/);
    } finally {
      other.close();
    }
  });
});
