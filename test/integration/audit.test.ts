// The audit trail against a real Vault: every token issued by concurrent signs, and every refusal, has exactly
// one record that `signet audit find` finds by jti, caller and subject; a sink that cannot be written (/dev/full,
// a file made immutable mid-run) makes signs answer 503 with no token issued without its record, and signing
// resumes when it can be written again; no token, signature, claim value, Vault token or caller token reaches the
// audit file; logrotate's rename + SIGHUP on a running `signet serve` loses no record.

import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { freePort } from '../../src/vault/dev-server.ts';
import { eventually, startSignet } from '../harness/signet.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '..', '..', 'bin', 'signet.js');
const dir = mkdtempSync(join(tmpdir(), 'signet-audit-'));
const SUBJECT_KEY = join(dir, 'subject.key');
const SECRET = 'audit-subject-secret-0123456789abcdef';
const TOKENS_FILE = join(dir, 'callers');
const ALICE = 'alice-caller-token-0123456789';
const BOB = 'bob-caller-token-0123456789abc';
writeFileSync(SUBJECT_KEY, `${SECRET}\n`, { mode: 0o600 });
writeFileSync(TOKENS_FILE, `alice:${ALICE}\nbob:${BOB}\n`, { mode: 0o600 });

const hmac = (sub: string) => createHmac('sha256', SECRET).update(sub).digest('hex');
const payloadOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, any>;
const recordsOf = (...files: string[]) => files.flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>));

async function auditFind(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, 'audit', 'find', ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** `clients` workers signing until stop(); every answer is kept. */
function traffic(post: (i: number) => Promise<{ status: number; body: any }>, clients: number) {
  const answers: Array<{ status: number; body: any }> = [];
  let running = true;
  let n = 0;
  const workers = Array.from({ length: clients }, async () => {
    while (running) answers.push(await post(n++));
  });
  return {
    answers,
    okCount: () => answers.filter((a) => a.status === 200).length,
    stop: async () => { running = false; await Promise.all(workers); },
  };
}

after(() => rmSync(dir, { recursive: true, force: true }));

describe('audit trail', () => {
  let vault: TestVault;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
    await vault.createKey('restricted', 'ed25519');
  });

  after(async () => {
    await vault?.stop();
  });

  test('every token of 32 concurrent clients and every refusal has exactly one record; audit find finds them; no secret in the file', async () => {
    const file = join(dir, 'concurrent.log');
    const configFile = join(dir, 'concurrent.yaml');
    writeFileSync(configFile, `audit: {file: "${file}", subject_key_file: "${SUBJECT_KEY}"}\n`);
    const signet = await startSignet(vault, [
      { name: 'app', audiences: ['api', 'web'] },
      { name: 'restricted', callers: ['alice'] },
      { name: 'absent' },
    ], { config: { callers: { tokens_file: TOKENS_FILE }, audit: { file, subject_key_file: SUBJECT_KEY } } });
    try {
      const as = (token: string) => ({ authorization: `Bearer ${token}` });
      await eventually(async () => (await signet.post('/v1/sign/app', { claims: { sub: 'warm-up', aud: 'api' } }, as(ALICE))).status === 200, 20_000, 'the first sign');
      // 32 clients, 8 signs each, half as alice, half as bob; a claim value that must never reach the file.
      const issued: Array<{ caller: string; sub: string; email: string; token: string; kid: string; key_version: number }> = [];
      await Promise.all(Array.from({ length: 32 }, async (_, client) => {
        for (let i = 0; i < 8; i++) {
          const caller = client % 2 === 0 ? 'alice' : 'bob';
          const sub = `subject-${client}`;
          const email = `person-${client}-${i}@mail.example`;
          let r = await signet.post('/v1/sign/app', { claims: { sub, email, aud: 'api' } }, as(caller === 'alice' ? ALICE : BOB));
          // A busy machine may make Signet shed a sign before its route runs (503 "overloaded"): retry it, as a client would.
          for (let retry = 0; r.status === 503 && /overloaded/.test(r.body.errors[0]) && retry < 20; retry++) {
            await new Promise((res) => setTimeout(res, 100));
            r = await signet.post('/v1/sign/app', { claims: { sub, email, aud: 'api' } }, as(caller === 'alice' ? ALICE : BOB));
          }
          assert.equal(r.status, 200, JSON.stringify(r.body));
          issued.push({ caller, sub, email, token: r.body.token, kid: r.body.kid, key_version: r.body.key_version });
        }
      }));
      // Refusals, each with its own request id: claims policy, caller policy, Signet-set claim, bad ttl, unknown
      // key, and a key Vault does not have (503).
      const refusals: Array<[string, string, unknown, string, number, string]> = [
        ['refuse-aud', '/v1/sign/app', { claims: { sub: 'refused-subject', aud: 'evil' } }, ALICE, 403, 'claim_policy'],
        ['refuse-caller', '/v1/sign/restricted', { claims: { sub: 'refused-subject' } }, BOB, 403, 'caller_policy'],
        ['refuse-iat', '/v1/sign/app', { claims: { iat: 1 } }, ALICE, 403, 'claim_policy'],
        ['refuse-ttl', '/v1/sign/app', { claims: { sub: 'x' }, ttl: 'forever' }, BOB, 400, 'invalid_request'],
        ['refuse-key', '/v1/sign/nope', { claims: {} }, ALICE, 404, 'unknown_key'],
        ['refuse-vault', '/v1/sign/absent', { claims: { sub: 'refused-subject' } }, ALICE, 503, 'vault_unavailable'],
      ];
      for (const [id, path, body, token, status] of refusals) {
        const r = await signet.post(path, body, { ...as(token), 'x-request-id': id });
        assert.equal(r.status, status, `${id}: ${JSON.stringify(r.body)}`);
      }

      const records = recordsOf(file);
      assert.equal(records.length, 1 + issued.length + refusals.length, 'one record per decision, no more');
      const byJti = new Map<string, Array<Record<string, any>>>();
      for (const r of records) if (r.jti) byJti.set(r.jti, [...(byJti.get(r.jti) ?? []), r]);
      for (const t of issued) {
        const payload = payloadOf(t.token);
        const found = byJti.get(payload.jti) ?? [];
        assert.equal(found.length, 1, `jti ${payload.jti}: ${found.length} records`);
        const r = found[0]!;
        assert.deepEqual(
          [r.type, r.outcome, r.status, r.caller, r.key, r.kid, r.key_version, r.iat, r.exp, r.aud, r.sub_hmac],
          ['audit', 'issued', 200, t.caller, 'app', t.kid, t.key_version, payload.iat, payload.exp, 'api', hmac(t.sub)],
        );
        assert.deepEqual(r.claims.sort(), Object.keys(payload).sort());
        assert.match(r.request_id, /^[\w-]+$/);
      }
      for (const [id, , , token, status, rule] of refusals) {
        const found = records.filter((r) => r.request_id === id);
        assert.equal(found.length, 1, `${id}: ${found.length} records`);
        assert.deepEqual([found[0]!.status, found[0]!.rule, found[0]!.caller], [status, rule, token === ALICE ? 'alice' : 'bob']);
        assert.notEqual(found[0]!.outcome, 'issued');
      }

      // audit find, as an investigator runs it: by jti, by caller, by subject value.
      const one = issued[5]!;
      const jti = payloadOf(one.token).jti as string;
      const byJtiOut = await auditFind(['--config', configFile, '--jti', jti, '--json']);
      assert.equal(byJtiOut.code, 0, byJtiOut.stderr);
      assert.deepEqual(byJtiOut.stdout.trim().split('\n').map((l) => JSON.parse(l).jti), [jti]);
      const alice = await auditFind(['--config', configFile, '--caller', 'alice', '--json']);
      const aliceRecords = alice.stdout.trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(aliceRecords.length, records.filter((r) => r.caller === 'alice').length);
      assert.equal(aliceRecords.filter((r) => r.outcome === 'issued').length, 1 + issued.filter((t) => t.caller === 'alice').length);
      const bySub = await auditFind(['--config', configFile, '--sub', one.sub]);
      assert.equal(bySub.code, 0, bySub.stderr);
      const rows = bySub.stdout.trim().split('\n');
      assert.match(rows[0]!, /^TIME\s+OUTCOME\s+CALLER\s+KEY\s+VERSION\s+KID\s+JTI\s+EXPIRES\s+REQUEST ID\s+RULE$/);
      assert.equal(rows.length - 1, 8, 'the 8 tokens of that subject');
      assert.ok(rows.some((row) => row.includes(jti)));
      const refusedSub = await auditFind(['--config', configFile, '--sub', 'refused-subject', '--outcome', 'refused', '--json']);
      assert.deepEqual(refusedSub.stdout.trim().split('\n').map((l) => JSON.parse(l).request_id).sort(), ['refuse-aud', 'refuse-caller']);
      const none = await auditFind(['--config', configFile, '--jti', 'no-such-jti']);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /no record matched/);
      const later = await auditFind(['--config', configFile, '--since', new Date(Date.now() + 60_000).toISOString()]);
      assert.equal(later.code, 1);

      // Log-grep: nothing secret in the audit file (nor in Signet's log).
      const text = readFileSync(file, 'utf8');
      const logs = signet.logs.join('\n');
      for (const t of issued) {
        const [, , signature] = t.token.split('.');
        for (const secret of [t.token, signature!, t.email, `"${t.sub}"`]) {
          assert.ok(!text.includes(secret), `audit file holds ${secret.slice(0, 20)}…`);
          assert.ok(!logs.includes(secret), `log holds ${secret.slice(0, 20)}…`);
        }
      }
      for (const secret of [vault.rootToken, ALICE, BOB, SECRET, 'refused-subject']) {
        assert.ok(!text.includes(secret), `audit file holds ${secret}`);
        assert.ok(!logs.includes(secret), `log holds ${secret}`);
      }
    } finally {
      await signet.close();
    }
  });

  test('an audit file on /dev/full: signs answer 503 and issue nothing; service resumes once the path is writable', async () => {
    const file = join(dir, 'full.log');
    symlinkSync('/dev/full', file);
    const signet = await startSignet(vault, [{ name: 'app' }], { config: { audit: { file, subject_key_file: SUBJECT_KEY } } });
    try {
      await signet.ready(20_000);
      const refused = await signet.post('/v1/sign/app', { claims: { sub: 'blocked' } });
      assert.equal(refused.status, 503);
      assert.equal(refused.body.token, undefined);
      assert.match(refused.body.errors[0], /audit record of this sign could not be written \(audit\.file: ENOSPC\), so no token was issued/);
      assert.equal(refused.headers.get('retry-after'), '5');
      const metrics = (await signet.get('/metrics')).text;
      assert.match(metrics, /^signet_audit_records_failed_total\{sink="file"\} [1-9]/m);
      assert.match(metrics, /^signet_sign_requests_total\{key="app",outcome="audit_error"\} 1$/m);
      assert.ok(signet.logs.some((l) => l.includes('"audit_write_failed"') && l.includes('"level":"error"')), 'an error log line');

      unlinkSync(file);
      const resumed = await signet.post('/v1/sign/app', { claims: { sub: 'resumed' } });
      assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
      const records = recordsOf(file);
      assert.deepEqual(records.map((r) => [r.jti, r.outcome]), [[payloadOf(resumed.body.token).jti, 'issued']]);
      assert.ok(signet.logs.some((l) => l.includes('"audit_recovered"')));
      assert.match((await signet.get('/metrics')).text, /^signet_audit_records_written_total\{sink="file"\} 1$/m);
    } finally {
      await signet.close();
    }
  });

  test('a file made immutable mid-run (chattr +i) under 32 clients: 503s, no token without its record, then recovery', async (t) => {
    const file = join(dir, 'immutable.log');
    writeFileSync(file, '', { mode: 0o600 });
    try {
      execFileSync('chattr', ['+i', file]);
      execFileSync('chattr', ['-i', file]);
    } catch (error) {
      t.skip(`chattr +i is not supported here (${(error as Error).message.split('\n')[0]}); the /dev/full test covers the failure path`);
      return;
    }
    const signet = await startSignet(vault, [{ name: 'app' }], { config: { audit: { file, subject_key_file: SUBJECT_KEY } } });
    try {
      await signet.ready(20_000);
      const load = traffic((i) => signet.post('/v1/sign/app', { claims: { sub: `s-${i}` } }), 32);
      await eventually(() => load.okCount() >= 100, 60_000, '100 tokens');
      execFileSync('chattr', ['+i', file]);
      const before503 = load.answers.length;
      await eventually(() => load.answers.slice(before503).filter((a) => a.status === 503 && /audit/.test(a.body.errors[0])).length >= 50, 60_000, '503s while the file is immutable');
      execFileSync('chattr', ['-i', file]);
      const okBefore = load.okCount();
      await eventually(() => load.okCount() >= okBefore + 100, 60_000, 'signing to resume');
      await load.stop();

      const statuses = new Set(load.answers.map((a) => a.status));
      assert.deepEqual([...statuses].sort(), [200, 503], 'only tokens and 503s');
      for (const a of load.answers.filter((x) => x.status === 503)) {
        assert.equal(a.body.token, undefined);
        // The audit refusal, or (on a busy machine) Signet shedding the sign before its route ran.
        assert.match(a.body.errors[0], /audit\.file: EPERM|overloaded/);
      }
      assert.ok(load.answers.filter((a) => a.status === 503 && /audit\.file: EPERM/.test(a.body.errors[0])).length >= 50);
      const issuedJtis = load.answers.filter((a) => a.status === 200).map((a) => payloadOf(a.body.token).jti as string);
      const recorded = recordsOf(file).filter((r) => r.outcome === 'issued').map((r) => r.jti as string);
      assert.equal(new Set(recorded).size, recorded.length, 'no record twice');
      assert.deepEqual([...recorded].sort(), [...issuedJtis].sort(), 'each token handed out has its record, and no record lacks its answer');
    } finally {
      try { execFileSync('chattr', ['-i', file]); } catch { /* already mutable */ }
      await signet.close();
    }
  });
});

describe('logrotate: rename + SIGHUP on a running signet serve', () => {
  let vault: TestVault;
  let child: ChildProcess | undefined;

  before(async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
  });

  after(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    await vault?.stop();
  });

  test('records written across a rename + SIGHUP, and a rename alone, are all found once; stdout audit lines are marked', async () => {
    const rotDir = mkdtempSync(join(dir, 'rotate-'));
    const file = join(rotDir, 'audit.log');
    const port = await freePort();
    const configFile = join(rotDir, 'signet.yaml');
    writeFileSync(configFile, [
      `listen: 127.0.0.1:${port}`,
      `vault: {address: "${vault.address}"}`,
      'keys: [{name: app, issuer: "https://issuer.test"}]',
      `audit: {file: "${file}", stdout: true, subject_key_file: "${SUBJECT_KEY}"}`,
      '',
    ].join('\n'));
    child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], { env: { ...process.env, VAULT_TOKEN: vault.rootToken }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    child.stderr!.on('data', (d) => { stderr += d; });
    const url = `http://127.0.0.1:${port}`;
    await eventually(async () => child!.exitCode === null && (await fetch(`${url}/readyz`)).status === 200, 30_000, `readiness (${stderr})`);
    const post = async () => {
      const r = await fetch(`${url}/v1/sign/app`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ claims: { sub: 'rot' } }) });
      return { status: r.status, body: await r.json() };
    };
    const load = traffic(post, 32);
    await eventually(() => load.okCount() >= 200, 60_000, '200 tokens');
    renameSync(file, `${file}.1`);
    child.kill('SIGHUP');
    await eventually(() => existsSync(file) && load.okCount() >= 500, 60_000, 'the reopened file and 300 more tokens');
    // A rename without SIGHUP: the file is reopened when Signet sees the path name another file.
    renameSync(file, `${file}.2`);
    await eventually(() => existsSync(file), 10_000, 'a new file after a plain rename');
    const okNow = load.okCount();
    await eventually(() => load.okCount() >= okNow + 200, 60_000, '200 more tokens');
    await load.stop();
    assert.equal(child.exitCode, null, 'SIGHUP did not stop Signet');
    // On a busy machine Signet may shed a sign (503 "overloaded", its event-loop protection); no answer may be an
    // audit failure.
    const others = load.answers.filter((a) => a.status !== 200);
    for (const a of others) {
      assert.equal(a.status, 503, JSON.stringify(a.body));
      assert.match(a.body.errors[0], /overloaded/, 'no sign failed for its record');
    }
    assert.ok(recordsOf(`${file}.1`).length > 0, 'records before the SIGHUP are in the rotated file');
    // logrotate's compress of the rotated file.
    writeFileSync(`${file}.1.gz`, gzipSync(readFileSync(`${file}.1`)));
    unlinkSync(`${file}.1`);

    const issued = load.answers.filter((a) => a.status === 200).map((a) => payloadOf(a.body.token).jti as string);
    const found = await auditFind(['--config', configFile, '--json']);
    assert.equal(found.code, 0, found.stderr);
    const jtis = found.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.outcome === 'issued').map((r) => r.jti as string);
    const warmups = jtis.length - issued.length;
    assert.ok(warmups >= 0);
    assert.equal(new Set(jtis).size, jtis.length, 'no record twice');
    const all = new Set(jtis);
    for (const jti of issued) assert.ok(all.has(jti), `token ${jti} has no record`);
    assert.ok(recordsOf(`${file}.2`).length > 0 && recordsOf(file).length > 0, 'records on both sides of the plain rename');
    assert.ok(stderr === '' || !/audit_write_failed/.test(stderr));

    // The stdout stream: the same records, each a JSON line with type "audit"; log lines never have it.
    child.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
    const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const auditLines = lines.filter((l) => l.type === 'audit');
    assert.deepEqual(auditLines.map((l) => l.jti).sort(), [...jtis].sort());
    assert.ok(lines.some((l) => l.type === undefined && l.level !== undefined), 'the operational log is on stdout too, unmarked');
    assert.ok(lines.some((l) => l.event === 'audit_reopen'), 'the SIGHUP was logged');
  });
});
