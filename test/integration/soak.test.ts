// Soak test (issue 10): faults mixed in a seeded random order, under concurrent load, against a real file-backed
// Vault. 64 signing clients and a caching verifier run throughout while a driver injects, one after another:
// Signet's token revoked (AppRole: it must log in again), Vault paused (SIGSTOP) and resumed, Vault killed and
// restarted (and unsealed), a routine rotation, min_encryption_version raised (an immediate switch), a
// permission-denied path (Signet's policy replaced without the sign path, then restored) and an overload burst
// (600 more clients for 2 s). It asserts:
// - every token returned verifies with the JWKS the verifier holds (zero rejected tokens);
// - every failure is a 503 with Retry-After: never another status, never a dropped connection, never an answer
//   later than sign_timeout + HANG_MARGIN_MS;
// - after each fault ends, signing recovers within RECOVERY_BOUND_MS (time from the fault's end to the first 200
//   of a request sent after it);
// - Vault logins: one at start plus exactly one per revocation (plus at most LOGIN_SLACK);
// - no secret (root token, Signet's Vault tokens, the AppRole secret_id, any issued token) in any log line.
// The seed comes from SIGNET_SOAK_SEED (else random) and is printed first: the same seed replays the same faults,
// in the same order, with the same durations. SIGNET_SOAK_SECONDS sets how long faults are injected (default 60,
// at most 180; the run then lasts about 25 s more, well inside the suite's --test-timeout of 600 s, and the test's
// own timeout stops it 2 minutes past that). SIGNET_SOAK_DUMP=file writes the failures and the log lines there.

import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startLoad } from '../harness/load-worker.ts';
import { startSignet, eventually, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const SEED = process.env.SIGNET_SOAK_SEED ? Number(process.env.SIGNET_SOAK_SEED) : randomInt(1, 2 ** 31);
// How long the driver keeps injecting faults; the run then drains (a minute and a half in all, set-up included).
const FAULT_SECONDS = Math.min(180, Number(process.env.SIGNET_SOAK_SECONDS ?? 60));
const CLIENTS = 64;
const BURST_CLIENTS = 600;
const SIGN_TIMEOUT_MS = 1000;
// A sign answers by sign_timeout on Signet's clock, from the moment its handler runs. The client measures more: the
// wait for Signet's event loop to read the request and to write the answer. Signet (buildApp) runs in the test's
// process, sharing its 2 cores with Vault, the load worker and (here) other jobs, and the 600-client burst is
// meant to saturate it: its event-loop guard sheds signs once the mean lag over a 250 ms sample passes 200 ms,
// and the batcher's sweeper answers expired waiters every 100 ms, both only when the loop runs. Answers at 2.0-2.8 s
// were measured during bursts on the loaded machine (event-loop delay up to ~1 s, printed below); a hang (a sign
// waiting for something other than its own deadline: a login, a renewal timer, Vault's silence) lasts longer.
const HANG_MARGIN_MS = 2000;
// After a fault ends, signing must be back within this. The slowest path is an outage: Signet's health probe
// runs every min(5 s, refresh_interval) = 1 s and closes the circuit, whose cooldown is at most 2 s anyway; a
// revocation costs one lookup and one login. 2 s at worst, doubled for a loaded CI machine, plus a margin.
const RECOVERY_BOUND_MS = 5000;
// Logins beyond 1 + revocations allowed: none are needed (a restarted file-backed Vault keeps its tokens).
const LOGIN_SLACK = 1;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** mulberry32: a small seeded PRNG, so that a seed replays the same run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const POLICY = (sign: boolean) => `
path "transit/keys/app" { capabilities = ["read"] }
path "transit/sign/app/sha2-256" { capabilities = [${sign ? '"update"' : '"deny"'}] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
`;

// The verifier fetches the JWKS again on an unknown kid unless it fetched less than this ago: jose's 30 s cooldown
// scaled to this test's time scale (jwks.max_age 2 s instead of the default 300 s) would be 0.2 s; 0.5 s is stricter.
const REFETCH_COOLDOWN_MS = 500;

type FaultName = 'revoke' | 'pause' | 'restart' | 'rotate' | 'min_encryption' | 'denied' | 'burst';
const FAULTS: FaultName[] = ['revoke', 'pause', 'restart', 'rotate', 'min_encryption', 'denied', 'burst'];

describe('soak: mixed faults under load against a real file-backed Vault', () => {
  let vault: TestVault;
  let signet: TestSignet;
  let secretId: string;

  before(async () => {
    process.stderr.write(`soak: seed=${SEED} (replay with SIGNET_SOAK_SEED=${SEED})\n`);
    vault = await startVault('file');
    await vault.createKey('app', 'ecdsa-p256');
    await vault.api('PUT', 'sys/policies/acl/signet', { policy: POLICY(true) });
    await vault.api('POST', 'sys/auth/approle', { type: 'approle' });
    await vault.api('POST', 'auth/approle/role/signet', { token_policies: ['signet'], token_no_default_policy: true, token_ttl: '1h', token_max_ttl: '2h' });
    const roleId = ((await vault.api('GET', 'auth/approle/role/signet/role-id')).data as { role_id: string }).role_id;
    secretId = ((await vault.api('POST', 'auth/approle/role/signet/secret-id', {})).data as { secret_id: string }).secret_id;
    const secretIdFile = join(mkdtempSync(join(tmpdir(), 'signet-soak-')), 'secret-id');
    writeFileSync(secretIdFile, `${secretId}\n`);
    signet = await startSignet(vault, [{ name: 'app', publish_delay: '5s', max_ttl: '10s', default_ttl: '10s' }], {
      config: {
        // publish_delay (5 s) exceeds jwks.max_age + refresh_interval + clock_skew (4 s): routine switches happen
        // within the run, and a verifier holding the JWKS for its max-age already has every kid that signs.
        refresh_interval: '1s', clock_skew: '1s', jwks: { max_age: '2s' },
        vault: {
          address: vault.address, sign_timeout: `${SIGN_TIMEOUT_MS / 1000}s`, timeout: '2s',
          auth: { method: 'approle', role_id: roleId, secret_id_file: secretIdFile },
        },
      },
      env: { VAULT_TOKEN: '' },
    });
    await signet.ready(20_000);
  });
  after(async () => {
    vault?.resume();
    await signet?.close();
    await vault?.stop();
  });

  test('every token verifies, every failure is a fast 503 with Retry-After, signing recovers after each fault', { timeout: (FAULT_SECONDS + 120) * 1000 }, async () => {
    const random = prng(SEED);
    const between = (lo: number, hi: number) => Math.round(lo + random() * (hi - lo));
    const load = startLoad({ url: signet.url, key: 'app', issuer: 'https://issuer.test', alg: 'ES256', clients: CLIENTS, refetchCooldownMs: REFETCH_COOLDOWN_MS });
    const { outcomes } = load;
    const vaultTokens = new Set<string>([signet.app.services.auth.current()]);
    const tokenWatch = setInterval(() => vaultTokens.add(signet.app.services.auth.current()), 20);

    const faults: Array<{ name: FaultName; end: number; recoveryMs: number; lasted: number }> = [];
    let revocations = 0;
    let restarts = 0;
    const forcedVersions = new Set<number>();

    async function inject(name: FaultName): Promise<number> {
      switch (name) {
        case 'revoke': {
          const token = signet.app.services.auth.current();
          vaultTokens.add(token);
          await vault.api('POST', 'auth/token/revoke', { token });
          revocations++;
          return Date.now();
        }
        case 'pause': {
          vault.pause();
          await sleep(between(2000, 3000));
          vault.resume();
          return Date.now();
        }
        case 'restart': {
          vault.process.kill('SIGKILL');
          await sleep(between(500, 1500));
          await vault.restart();
          restarts++;
          return Date.now();
        }
        case 'rotate': {
          await vault.rotate('app');
          return Date.now();
        }
        case 'min_encryption': {
          // The runbook's immediate switch: a new version, published (in Signet's JWKS for one jwks.max_age, so
          // every verifier's cache holds it), then forced to sign before its publish_delay has passed.
          await vault.rotate('app');
          const latest = (await vault.readKey('app')).latest_version as number;
          await eventually(async () => ((await signet.get('/v1/keys')).body.keys[0].versions as Array<{ version: number }>)
            .some((v) => v.version === latest), 10_000, `version ${latest} published`);
          await sleep(2000);
          await vault.configKey('app', { min_encryption_version: latest });
          forcedVersions.add(latest);
          return Date.now();
        }
        case 'denied': {
          await vault.api('PUT', 'sys/policies/acl/signet', { policy: POLICY(false) });
          await sleep(between(1500, 2500));
          await vault.api('PUT', 'sys/policies/acl/signet', { policy: POLICY(true) });
          return Date.now();
        }
        case 'burst': {
          await load.burst(BURST_CLIENTS, 2000);
          return Date.now();
        }
      }
    }

    const signetLoop = monitorEventLoopDelay({ resolution: 10 });
    signetLoop.enable();
    const started = Date.now();
    try {
      await sleep(1000);
      // Rounds of every fault in a shuffled order until FAULT_SECONDS have passed (at least one full round).
      let round = 0;
      while (round === 0 || Date.now() - started < FAULT_SECONDS * 1000) {
        const order = [...FAULTS];
        for (let i = order.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        for (const name of order) {
          const began = Date.now();
          const end = await inject(name);
          const firstOk = await eventually(
            () => outcomes.find((o) => !o.burst && o.start >= end && o.status === 200)?.end,
            RECOVERY_BOUND_MS * 3, `signing to recover after ${name} (seed ${SEED})`,
          );
          faults.push({ name, end, recoveryMs: firstOk - end, lasted: end - began });
          await sleep(between(800, 2000));
        }
        round++;
      }
    } finally {
      clearInterval(tokenWatch);
      vault.resume();
    }
    const { stats: verifier, loopDelayMaxMs } = await load.stop();
    const tokens = outcomes.filter((o) => o.status === 200).map((o) => o.token!);
    const elapsed = Date.now() - started;

    // Figures.
    const ok = outcomes.filter((o) => o.status === 200).length;
    const failed = outcomes.filter((o) => o.status !== 200);
    const latency = (list: typeof outcomes) => list.reduce((max, o) => Math.max(max, o.end - o.start), 0);
    const maxLatency = latency(outcomes.filter((o) => o.status !== 200 || !o.burst));
    const maxBurstOk = latency(outcomes.filter((o) => o.status === 200 && o.burst));
    const recovery: Partial<Record<FaultName, number>> = {};
    for (const f of faults) recovery[f.name] = Math.max(recovery[f.name] ?? 0, f.recoveryMs);
    // 503s that blame Signet's queue while Vault was paused or down (a misattribution the soak test once found).
    const outages = faults.filter((f) => f.name === 'pause' || f.name === 'restart').map((f) => [f.end - f.lasted, f.end + 1000] as const);
    const blamedOnSignet = failed.filter((o) => /^Signet is overloaded: this sign waited/.test(o.error ?? '')
      && outages.some(([from, to]) => o.start >= from && o.start <= to)).length;
    const logins = signet.logs.filter((l) => l.includes('"component":"vault-auth"') && l.includes('"event":"authenticated"')).length;
    const unknownKid = [...verifier.unknownKidVersions].sort((a, b) => a - b);
    process.stderr.write(`soak: seed=${SEED} signs=${outcomes.length} ok=${ok} 503=${failed.filter((o) => o.status === 503).length} `
      + `other=${failed.filter((o) => o.status !== 503).length} max_latency_ms=${maxLatency} max_burst_ok_ms=${maxBurstOk} overloaded_503_in_vault_outages=${blamedOnSignet} `
      + `recovery_ms{${Object.entries(recovery).map(([k, v]) => `${k}=${v}`).join(',')}} logins=${logins} `
      + `revocations=${revocations} restarts=${restarts} faults=${faults.length} verified=${verifier.verified} rejected=${verifier.rejected.length} `
      + `jwks_fetches=${verifier.fetches} signet_loop_delay_max_ms=${Math.round(signetLoop.max / 1e6)} client_loop_delay_max_ms=${loopDelayMaxMs} unknown_kid_versions=[${unknownKid.join(',')}] forced_versions=[${[...forcedVersions].join(',')}] elapsed_ms=${elapsed}\n`);
    process.stderr.write(`soak: faults ${faults.map((f) => `${f.name}(${f.lasted}ms→${f.recoveryMs}ms)`).join(' ')}\n`);

    if (process.env.SIGNET_SOAK_DUMP) {
      writeFileSync(process.env.SIGNET_SOAK_DUMP, JSON.stringify({ faults, outcomes: outcomes.filter((o) => o.status !== 200 || o.end - o.start > 500).map((o) => ({ ...o, token: undefined })), logs: signet.logs.filter((l) => !l.includes('"msg":"request"')) }));
    }
    // Every token returned verifies with the JWKS the verifier holds.
    assert.deepEqual(verifier.rejected, [], `seed ${SEED}: tokens rejected by the caching verifier`);
    assert.equal(verifier.verified, ok, 'every token returned was verified');
    // Every failure is a 503 with Retry-After; nothing answers past sign_timeout + margin.
    const notServiceUnavailable = failed.filter((o) => o.status !== 503);
    assert.deepEqual(notServiceUnavailable.slice(0, 5), [], `seed ${SEED}: ${notServiceUnavailable.length} failures other than 503`);
    const noRetryAfter = failed.filter((o) => !/^\d+$/.test(o.retryAfter ?? ''));
    assert.deepEqual(noRetryAfter.slice(0, 5), [], `seed ${SEED}: 503s without Retry-After`);
    // The bound holds for every failure, and for every answer to the 64 steady clients. A burst client's 200 may come
    // later (3.2 s once, in the first burst of a run, at a load average of 20): a success delayed by the overload the
    // test creates on purpose, not a hang; it is printed (max_burst_ok_ms) rather than bounded.
    const slow = outcomes.filter((o) => (o.status !== 200 || !o.burst) && o.end - o.start > SIGN_TIMEOUT_MS + HANG_MARGIN_MS);
    assert.deepEqual(slow.slice(0, 5), [], `seed ${SEED}: ${slow.length} answers slower than sign_timeout + ${HANG_MARGIN_MS} ms`);
    // Recovery within the bound, after every fault.
    const late = faults.filter((f) => f.recoveryMs > RECOVERY_BOUND_MS);
    assert.deepEqual(late, [], `seed ${SEED}: signing recovered later than ${RECOVERY_BOUND_MS} ms`);
    // Logins: the first, and one per revocation (a restart keeps the token: file storage); nothing more.
    assert.ok(logins >= 1 + revocations && logins <= 1 + revocations + LOGIN_SLACK,
      `seed ${SEED}: ${logins} logins for ${revocations} revocations and ${restarts} restarts`);
    assert.ok(ok > faults.length * 10, 'traffic flowed');

    // No secret in any log line.
    const fixed = [vault.rootToken, secretId, ...vaultTokens].filter(Boolean);
    for (const line of signet.logs) for (const secret of fixed) assert.ok(!line.includes(secret), `seed ${SEED}: a log line contains a secret: ${line.slice(0, 200)}`);
    const runs = new Set<string>();
    for (const line of signet.logs) for (const m of line.matchAll(/[A-Za-z0-9_-]{40,}/g)) runs.add(m[0]);
    const leaked = tokens.filter((t) => {
      const [, payload, signature] = t.split('.');
      return runs.has(payload!) || runs.has(signature!);
    });
    assert.equal(leaked.length, 0, `seed ${SEED}: issued tokens in the logs`);
  });
});
