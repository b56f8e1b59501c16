// Rotation against a real Vault (DESIGN §5): routine rotation, immediate switch, revocation, and a fleet of two
// instances that agree on the signing kid through several rotations under traffic, with a verifier that caches
// the JWKS for jwks.max_age and never rejects a token. Short durations keep it fast; the rules are the same.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { builtSignet } from '../harness/build.ts';
import { postSign, recordLag, startSignet, eventually, withinOneRefresh as withinRefresh, type TestSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const run = promisify(execFile);
// The keys commands as the image runs them: the production bundle (test/harness/build.ts).
const CLI = await builtSignet();

// publish_delay must exceed max_age + refresh_interval + clock_skew = 4 s.
const TIMING = { refresh_interval: '1s', jwks: { max_age: '2s' }, clock_skew: '1s' };
const KEY = { publish_delay: '5s', max_ttl: '3s', default_ttl: '3s' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const REFRESH_MS = 1000;
/**
 * Beyond refresh_interval, a change made in Vault can wait for: a periodic read that began just before the change
 * (it returns the old state; the next one starts at most refresh_interval after it ends), one more read (one key:
 * tens of ms idle), and the test's 20 ms poll and request: 750 ms, still under a second refresh. Time the event
 * loop of this process (Signet's too) stood still on a loaded CI is measured and added by withinOneRefresh.
 */
const REFRESH_MARGIN_MS = 750;

const withinOneRefresh = <T>(what: string, check: () => Promise<T | undefined | false>) => withinRefresh(what, REFRESH_MS, REFRESH_MARGIN_MS, check);

/** When Vault created a version of an asymmetric key, ms since the epoch. */
async function createdAt(vault: TestVault, name: string, version: number): Promise<number> {
  return Date.parse(((await vault.readKey(name)).keys as Record<string, { creation_time: string }>)[String(version)]!.creation_time);
}

type KeyInfo = { name: string; signing_version: number; signing_kid: string; versions: Array<{ version: number; kid: string; state: string }> };
async function keyInfo(signet: TestSignet, name: string): Promise<KeyInfo> {
  return ((await signet.get('/v1/keys')).body.keys as KeyInfo[]).find((k) => k.name === name)!;
}
async function jwksKids(signet: TestSignet): Promise<string[]> {
  return ((await signet.get('/.well-known/jwks.json')).body.keys as Array<{ kid: string }>).map((k) => k.kid);
}

describe('rotation', () => {
  let vault: TestVault;
  before(async () => {
    vault = await startVault();
  });
  after(async () => vault?.stop());

  test('routine: published at once, signs after publish_delay, old kid retired max_ttl + skew later; keys retire', async () => {
    await vault.createKey('routine', 'ecdsa-p256');
    // max_ttl 6 s: the keys retire CLI below must run while v1's last tokens live (a node start on a loaded CI can
    // take seconds); v1 then retires 6 + 1 + 1 s after the switch.
    const ROUTINE = { ...KEY, max_ttl: '6s', default_ttl: '6s' };
    const signet = await startSignet(vault, [{ name: 'routine', ...ROUTINE }], { config: TIMING });
    try {
      await signet.ready(10_000);
      const v1 = await keyInfo(signet, 'routine');
      const oldToken = (await postSign(signet, '/v1/sign/routine', { claims: {} })).body;
      assert.equal(oldToken.key_version, 1);

      // The runbook's command, run as an operator would.
      await vault.cli('write', '-f', 'transit/keys/routine/rotate');
      // Published within one refresh, not signing yet.
      await withinOneRefresh('v2 in the JWKS', async () => (await jwksKids(signet)).length === 2);
      const created = await createdAt(vault, 'routine', 2);
      const pending = await keyInfo(signet, 'routine');
      assert.equal(pending.versions.find((v) => v.version === 2)!.state, 'pending');
      assert.equal((await postSign(signet, '/v1/sign/routine', { claims: {} })).body.key_version, 1);
      assert.ok(signet.logs.some((l) => /"event":"version_state".*"version":2.*"from":"new","to":"pending"/.test(l)));

      // Signs after publish_delay (5 s), not before.
      const lag = recordLag();
      const switched = await eventually(async () => {
        const signed = (await signet.post('/v1/sign/routine', { claims: {} })).body;
        return signed.key_version === 2 ? Date.now() : undefined;
      }, 15_000, 'v2 signing', 20);
      // The schedule is evaluated at each sign from Vault's creation time: not before publish_delay, and at once
      // then (within the margin, plus the time the event loop stood still meanwhile).
      const switchLag = lag.within(created + 5000, switched);
      process.stderr.write(`rotation: v2 signing ${switched - created} ms after Vault created it (publish_delay 5 s; event-loop lag ${switchLag} ms)\n`);
      assert.ok(switched - created >= 5000, `switched ${switched - created} ms after v2 was created`);
      assert.ok(switched - created <= 5000 + REFRESH_MARGIN_MS + switchLag, `switched ${switched - created} ms after v2 was created`);
      assert.equal((await keyInfo(signet, 'routine')).versions.find((v) => v.version === 1)!.state, 'verify-only');
      // The old token (ttl 6 s) is still valid if not yet expired, and its kid is still published.
      assert.ok((await jwksKids(signet)).includes(v1.signing_kid));

      // keys retire refuses while v1 may still have live tokens.
      const dir = mkdtempSync(join(tmpdir(), 'signet-rot-'));
      const file = join(dir, 'signet.yaml');
      writeFileSync(file, JSON.stringify({ vault: { address: vault.address }, keys: [{ name: 'routine', issuer: 'https://issuer.test', ...ROUTINE }], ...TIMING }));
      const env = { ...process.env, VAULT_TOKEN: vault.rootToken };
      const refused = await run(process.execPath, [CLI, 'keys', 'retire', 'routine', '--config', file], { env }).catch((e) => e);
      assert.equal(refused.code, 2);
      assert.match(refused.stdout, /tokens signed by v1 until \S+ may still be live; not retiring those \(use --force/);

      // Retired max_ttl + clock_skew + refresh_interval (8 s) after it stopped signing: out of the JWKS.
      await eventually(async () => !(await jwksKids(signet)).includes(v1.signing_kid), 20_000, 'v1 out of the JWKS', 20);
      const retiredAt = Date.now();
      lag.stop();
      // v1 stopped signing at created + 5 s; it retires 8 s later (max_ttl 6 s + clock_skew 1 s + refresh 1 s).
      const retireLag = lag.within(created + 13_000, retiredAt);
      process.stderr.write(`rotation: v1 out of the JWKS ${retiredAt - created} ms after v2 was created (13 s by schedule; event-loop lag ${retireLag} ms)\n`);
      assert.ok(retiredAt - created >= 13_000, `retired ${retiredAt - created} ms after v2 was created`);
      assert.ok(retiredAt - created <= 13_000 + REFRESH_MS + REFRESH_MARGIN_MS + retireLag, `retired ${retiredAt - created} ms after v2 was created`);
      assert.equal((await keyInfo(signet, 'routine')).versions.find((v) => v.version === 1)!.state, 'retired');
      const late = await signet.post('/v1/verify', { token: oldToken.token });
      assert.equal(late.status, 401);

      // Now every token of v1 has expired: keys retire raises min_decryption_version.
      const retired = await run(process.execPath, [CLI, 'keys', 'retire', 'routine', '--config', file], { env });
      assert.match(retired.stdout, /raised routine min_decryption_version to 2/);
      assert.equal((await vault.readKey('routine')).min_decryption_version, 2);
    } finally {
      await signet.close();
    }
  });

  test('immediate switch: raising min_encryption_version moves signing within one refresh', async () => {
    await vault.createKey('switch', 'ed25519');
    const signet = await startSignet(vault, [{ name: 'switch', ...KEY, publish_delay: '1h' }], { config: TIMING });
    try {
      await signet.ready(10_000);
      await vault.rotate('switch');
      await withinOneRefresh('v2 loaded', async () => (await keyInfo(signet, 'switch')).versions.length === 2);
      assert.equal((await postSign(signet, '/v1/sign/switch', { claims: {} })).body.key_version, 1);
      await vault.cli('write', 'transit/keys/switch/config', 'min_encryption_version=2');
      await withinOneRefresh('signing with v2', async () => (await signet.post('/v1/sign/switch', { claims: {} })).body.key_version === 2);

      // keys retire --force revokes v1 at once, although its tokens may still be live.
      const v1 = (await keyInfo(signet, 'switch')).versions.find((v) => v.version === 1)!;
      assert.equal(v1.state, 'verify-only');
      const dir = mkdtempSync(join(tmpdir(), 'signet-force-'));
      const file = join(dir, 'signet.yaml');
      writeFileSync(file, JSON.stringify({ vault: { address: vault.address }, keys: [{ name: 'switch', issuer: 'https://issuer.test', ...KEY, publish_delay: '1h' }], ...TIMING }));
      const forced = await run(process.execPath, [CLI, 'keys', 'retire', 'switch', '--force', '--config', file], { env: { ...process.env, VAULT_TOKEN: vault.rootToken } });
      assert.match(forced.stdout, /raised switch min_decryption_version to 2/);
      await withinOneRefresh('v1 out of the JWKS', async () => !(await jwksKids(signet)).includes(v1.kid));
    } finally {
      await signet.close();
    }
  });

  test('revoke: raising min_decryption_version removes older kids and fails their tokens within one refresh', async () => {
    await vault.createKey('revoke', 'rsa-2048');
    const signet = await startSignet(vault, [{ name: 'revoke', ...KEY, max_ttl: '1h', default_ttl: '1h' }], { config: TIMING });
    try {
      await signet.ready(10_000);
      const old = (await postSign(signet, '/v1/sign/revoke', { claims: {} })).body;
      await vault.rotate('revoke');
      await vault.configKey('revoke', { min_encryption_version: 2 });
      await withinOneRefresh('signing with v2', async () => (await signet.post('/v1/sign/revoke', { claims: {} })).body.key_version === 2);
      assert.equal((await signet.post('/v1/verify', { token: old.token })).status, 200, 'v1 is verify-only for its live tokens');
      await vault.cli('write', 'transit/keys/revoke/config', 'min_decryption_version=2');
      await withinOneRefresh('v1 out of the JWKS', async () => !(await jwksKids(signet)).includes(old.kid));
      const refused = await signet.post('/v1/verify', { token: old.token });
      assert.equal(refused.status, 401);
      assert.deepEqual(refused.body.errors, ['header kid: not in the key set (unknown or retired key version)']);
    } finally {
      await signet.close();
    }
  });

  test('a key deleted and re-created under the same name gets new kids; old tokens fail', async () => {
    await vault.createKey('recreated', 'ecdsa-p256', { deletion_allowed: true });
    await vault.configKey('recreated', { deletion_allowed: true });
    const signet = await startSignet(vault, [{ name: 'recreated', ...KEY }], { config: TIMING });
    try {
      await signet.ready(10_000);
      const old = (await postSign(signet, '/v1/sign/recreated', { claims: {} })).body;
      await vault.api('DELETE', 'transit/keys/recreated');
      await vault.createKey('recreated', 'ecdsa-p256');
      await withinOneRefresh('new kid', async () => (await keyInfo(signet, 'recreated')).signing_kid !== old.kid);
      const fresh = (await postSign(signet, '/v1/sign/recreated', { claims: {} })).body;
      assert.equal(fresh.key_version, 1);
      assert.notEqual(fresh.kid, old.kid);
      assert.equal((await signet.post('/v1/verify', { token: old.token })).status, 401);
      assert.equal((await signet.post('/v1/verify', { token: fresh.token })).status, 200);
    } finally {
      await signet.close();
    }
  });

  test('two instances, several rotations under traffic: a JWKS-caching verifier rejects nothing, kids agree', async () => {
    await vault.createKey('fleet', 'ecdsa-p256');
    const keys = [{ name: 'fleet', ...KEY }];
    const a = await startSignet(vault, keys, { config: TIMING });
    const b = await startSignet(vault, keys, { config: TIMING });
    try {
      await Promise.all([a.ready(), b.ready()]);
      // A verifier that honours Cache-Control: it fetches the JWKS and keeps it for max-age (2 s).
      let cached: { jwks: ReturnType<typeof createLocalJWKSet>; until: number } | undefined;
      const verifierJwks = async () => {
        if (!cached || Date.now() >= cached.until) {
          const response = await a.get('/.well-known/jwks.json');
          const maxAge = Number(/max-age=(\d+)/.exec(response.headers.get('cache-control')!)![1]);
          cached = { jwks: createLocalJWKSet(response.body as JSONWebKeySet), until: Date.now() + maxAge * 1000 };
        }
        return cached.jwks;
      };
      const failures: string[] = [];
      const samples: Array<{ at: number; a: string; b: string }> = [];
      let stop = false;
      let signed = 0;
      const traffic = (async () => {
        while (!stop) {
          const at = Date.now();
          const [ta, tb] = await Promise.all([postSign(a, '/v1/sign/fleet', { claims: {} }), postSign(b, '/v1/sign/fleet', { claims: {} })]);
          samples.push({ at, a: ta.body.kid, b: tb.body.kid });
          for (const t of [ta.body, tb.body]) {
            signed++;
            try {
              await jwtVerify(t.token, await verifierJwks(), { algorithms: ['ES256'] });
            } catch (error) {
              failures.push(`${t.kid}: ${(error as Error).message}`);
            }
          }
          await sleep(25);
        }
      })();
      // Three rotations: two inside one publish delay, then one more after the first switch. Each step waits on
      // what the previous one must bring about (both instances publish the version, signing moves), not on a clock.
      const bothList = (version: number) => async () => (await Promise.all([a, b].map((s) => keyInfo(s, 'fleet'))))
        .every((info) => info.versions.some((v) => v.version === version));
      const v1Kid = (await keyInfo(a, 'fleet')).signing_kid;
      await eventually(() => samples.length >= 5, 10_000, 'traffic on v1', 20);
      await vault.rotate('fleet');
      await eventually(bothList(2), 10_000, 'v2 published by both', 20);
      await vault.rotate('fleet');
      await eventually(bothList(3), 10_000, 'v3 published by both', 20);
      await eventually(() => samples.some((s) => s.a !== v1Kid && s.b !== v1Kid), 15_000, 'the first switch, on both', 20);
      await vault.rotate('fleet');
      await eventually(bothList(4), 10_000, 'v4 published by both', 20);
      const v4Kid = (await keyInfo(a, 'fleet')).versions.find((v) => v.version === 4)!.kid;
      await eventually(() => samples.filter((s) => s.a === v4Kid && s.b === v4Kid).length >= 5, 15_000, 'both signing with v4', 20);
      stop = true;
      await traffic;

      assert.deepEqual(failures, [], `${failures.length} of ${signed} tokens failed the caching verifier`);
      const kidsSeen = new Set(samples.flatMap((s) => [s.a, s.b]));
      assert.ok(kidsSeen.size >= 3, `signing moved through versions (saw ${kidsSeen.size} kids)`);
      // Each instance's signing only ever moves forward through the versions.
      const versionOf = new Map((await keyInfo(a, 'fleet')).versions.map((v) => [v.kid, v.version]));
      for (const side of ['a', 'b'] as const) {
        const versions = samples.map((s) => versionOf.get(s[side])!);
        assert.ok(versions.every((v, i) => v !== undefined && (i === 0 || v >= versions[i - 1]!)), `${side} signed with versions ${[...new Set(versions)].join(', ')} out of order`);
      }
      // Both instances compute the same schedule from Vault's state; with one clock they may differ only for the
      // instant of a transition (clock_skew, 1 s, is the bound).
      const disagreements = samples.filter((s) => s.a !== s.b);
      for (const d of disagreements) {
        const nearTransition = samples.some((s) => s.a === s.b && Math.abs(s.at - d.at) <= 1000 && (s.a === d.a || s.a === d.b));
        assert.ok(nearTransition, `instances disagreed at ${new Date(d.at).toISOString()} away from any transition`);
      }
      assert.ok(disagreements.length <= 4, `${disagreements.length} disagreeing samples`);
      const infoA = await keyInfo(a, 'fleet');
      const infoB = await keyInfo(b, 'fleet');
      assert.deepEqual(infoA.versions, infoB.versions);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('keys create with --auto-rotate: non-exportable, auto_rotate_period set, status shows the next rotation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-create-'));
    const file = join(dir, 'signet.yaml');
    writeFileSync(file, JSON.stringify({ vault: { address: vault.address }, keys: [{ name: 'made', issuer: 'https://issuer.test' }] }));
    const env = { ...process.env, VAULT_TOKEN: vault.rootToken };
    const created = await run(process.execPath, [CLI, 'keys', 'create', 'made', '--type', 'ecdsa-p384', '--auto-rotate', '90d', '--config', file], { env });
    assert.match(created.stdout, /created Transit key made \(ecdsa-p384, not exportable, auto-rotates every 90d\)/);
    const key = await vault.readKey('made');
    assert.equal(key.exportable, false);
    assert.equal(key.allow_plaintext_backup, false);
    assert.equal(key.auto_rotate_period, 90 * 86400);
    const status = await run(process.execPath, [CLI, 'keys', 'status', '--config', file], { env });
    assert.match(status.stdout, /made {2}\(ecdsa-p384, ES384\) {2}signing: v1 .* next rotation: \d{4}-\d\d-\d\dT/);
  });
});
