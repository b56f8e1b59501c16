// The audit trail's pure parts (configuration, records, filters) and its sinks against real files (tmpdir,
// /dev/full): group commit, fail closed, reopening after a move.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Writable } from 'node:stream';
import { parseAuditConfig } from '../../src/audit/config.ts';
import { buildRecord, callerName, matches, parseRecord, serializeRecord, subjectHasher, subjectHmac, type SignDecision } from '../../src/audit/record.ts';
import { Auditor, AuditUnavailableError, readSubjectKey } from '../../src/audit/auditor.ts';
import { FileSink, StdoutSink } from '../../src/audit/sink.ts';
import { rotatedFiles, findRecords } from '../../src/audit/find.ts';
import { buildConfig } from '../../src/config.ts';
import { ClaimPolicyError, ConfigError } from '../../src/errors.ts';
import { createMetrics } from '../../src/observability/metrics.ts';

const SECRET = Buffer.from('0123456789abcdef0123456789abcdef');
const HASH = subjectHasher(SECRET, 2);

function token(payload: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'ES256', kid: 'kid-1', typ: 'JWT' })}.${part(payload)}.c2lnbmF0dXJl`;
}

function refused(fn: () => unknown, field: string): void {
  assert.throws(fn, (error: unknown) => error instanceof ConfigError && error.field === field && error.message.includes(field));
}

describe('audit configuration', () => {
  test('absent: auditing off; present: a sink and the subject key file are required, fail_closed defaults to true', () => {
    assert.equal(parseAuditConfig(undefined), undefined);
    assert.deepEqual(parseAuditConfig({ file: '/var/log/a', subject_key_file: '/k' }), { file: '/var/log/a', stdout: false, subjectKeyFile: '/k', failClosed: true });
    assert.equal(parseAuditConfig({ stdout: true, subject_key_file: '/k', fail_closed: false })?.failClosed, false);
    refused(() => parseAuditConfig({ subject_key_file: '/k' }), 'audit');
    refused(() => parseAuditConfig({ file: '/a' }), 'audit.subject_key_file');
    refused(() => parseAuditConfig({ file: '/a', subject_key_file: '/k', fail_closed: 'no' }), 'audit.fail_closed');
    refused(() => parseAuditConfig({ file: '/a', subject_key_file: '/k', sync: true }), 'audit.sync');
    refused(() => parseAuditConfig({ file: '', subject_key_file: '/k' }), 'audit.file');
    refused(() => parseAuditConfig('yes'), 'audit');
  });

  test('buildConfig carries the audit block', () => {
    const config = buildConfig({ keys: [{ name: 'k', issuer: 'https://i' }], audit: { file: '/a', subject_key_file: '/k' } }, { VAULT_TOKEN: 't' });
    assert.equal(config.audit?.file, '/a');
    assert.equal(buildConfig({ keys: [{ name: 'k', issuer: 'https://i' }] }, { VAULT_TOKEN: 't' }).audit, undefined);
  });

  test('the subject key must hold at least 32 bytes (a trailing newline does not count)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-audit-key-'));
    try {
      writeFileSync(join(dir, 'short'), `${'x'.repeat(31)}\n`);
      writeFileSync(join(dir, 'ok'), `${'x'.repeat(32)}\n`);
      refused(() => readSubjectKey(join(dir, 'short')), 'audit.subject_key_file');
      refused(() => readSubjectKey(join(dir, 'missing')), 'audit.subject_key_file');
      assert.equal(readSubjectKey(join(dir, 'ok')).length, 32);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe('audit records', () => {
  const issued: SignDecision = {
    requestId: 'req-1', caller: 'alice', key: 'app',
    result: { token: token({ iss: 'https://i', sub: 'user-42', email: 'e@example.com', aud: 'api', iat: 100, nbf: 100, exp: 400, jti: 'jti-1' }), kid: 'kid-1', alg: 'ES256', key: 'app', key_version: 3 },
  };

  test('an issued token: who, which key and version, jti/iat/exp/aud, claim names, HMAC of sub; no value, no token', () => {
    const record = buildRecord(issued, HASH, Date.UTC(2026, 10, 30, 21, 0, 0));
    assert.deepEqual(record, {
      type: 'audit', time: '2026-11-30T21:00:00.000Z', request_id: 'req-1', caller: 'alice', key: 'app', key_version: 3, kid: 'kid-1', alg: 'ES256',
      jti: 'jti-1', iat: 100, exp: 400, aud: 'api', claims: ['iss', 'sub', 'email', 'aud', 'iat', 'nbf', 'exp', 'jti'],
      sub_hmac: subjectHmac(SECRET, 'user-42'), outcome: 'issued', status: 200,
    });
    const line = serializeRecord(record);
    assert.ok(line.endsWith('}\n') && !line.slice(0, -1).includes('\n'));
    for (const secret of ['user-42', 'e@example.com', issued.result!.token, 'c2lnbmF0dXJl']) assert.ok(!line.includes(secret), secret);
    assert.match(record.sub_hmac!, /^[0-9a-f]{64}$/);
    assert.notEqual(subjectHmac(Buffer.from('another secret of thirty-two byt'), 'user-42'), record.sub_hmac);
  });

  test('a refusal: the rule and Signet\'s message, the requested claim names, no value', () => {
    const record = buildRecord({
      requestId: 'req-2', caller: 'local', key: 'app', claims: { sub: 'user-42', aud: 'evil', secret: 'v' },
      error: new ClaimPolicyError("claim aud: a value is not in this key's audience allow-list (keys[].audiences)"),
    }, HASH, 0);
    assert.equal(record.outcome, 'refused');
    assert.equal(record.status, 403);
    assert.equal(record.rule, 'claim_policy');
    assert.match(record.reason!, /audience allow-list/);
    assert.deepEqual(record.claims, ['sub', 'aud', 'secret']);
    assert.equal(record.sub_hmac, subjectHmac(SECRET, 'user-42'));
    assert.equal(record.kid, undefined);
    assert.ok(!serializeRecord(record).includes('"v"'));
    // An error that is not Signet's own: its message is not recorded.
    const internal = buildRecord({ requestId: 'r', caller: 'local', key: 'app', claims: 'not an object', error: new Error('secret detail') }, HASH, 0);
    assert.deepEqual([internal.outcome, internal.status, internal.rule, internal.reason, internal.claims], ['error', 500, 'internal', undefined, []]);
  });

  test('caller names, parsing back, filters', () => {
    assert.equal(callerName(null), 'local');
    assert.equal(callerName({ name: 'alice' }), 'alice');
    assert.equal(callerName({}), '(unnamed)');
    // The remembering hasher agrees with the HMAC, also across its clearing (size 2 here).
    for (const sub of ['a', 'b', 'c', 'a', 'b', 'c']) assert.equal(HASH(sub), subjectHmac(SECRET, sub));
    const record = buildRecord(issued, HASH, Date.UTC(2026, 10, 30, 21, 0, 0));
    assert.deepEqual(parseRecord(serializeRecord(record).trim()), record);
    assert.equal(parseRecord('{"level":"info","msg":"x"}'), undefined);
    assert.equal(parseRecord('{"type":"audit","ti'), undefined);
    assert.ok(matches(record, {}));
    assert.ok(matches(record, { jti: 'jti-1', caller: 'alice', key: 'app', kid: 'kid-1', subHmac: subjectHmac(SECRET, 'user-42'), outcome: 'issued' }));
    assert.ok(!matches(record, { jti: 'jti-2' }));
    assert.ok(!matches(record, { caller: 'bob' }));
    assert.ok(!matches(record, { subHmac: subjectHmac(SECRET, 'user-43') }));
    assert.ok(matches(record, { since: Date.UTC(2026, 10, 30, 21), until: Date.UTC(2026, 10, 30, 21, 0, 1) }));
    assert.ok(!matches(record, { since: Date.UTC(2026, 10, 30, 21, 0, 1) }));
    assert.ok(!matches(record, { until: Date.UTC(2026, 10, 30, 21) }));
  });
});

function quietLog(lines: string[] = []) {
  return pino({ level: 'info' }, new Writable({ write(chunk, _e, done) { lines.push(chunk.toString()); done(); } }));
}

describe('Auditor and FileSink', () => {
  test('records of one event-loop turn are written with one write; each caller waits for its batch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-audit-'));
    try {
      const file = join(dir, 'audit.log');
      const metrics = createMetrics();
      writeFileSync(join(dir, 'key'), SECRET);
      const auditor = new Auditor({ file, stdout: false, subjectKeyFile: join(dir, 'key'), failClosed: true }, quietLog(), metrics);
      auditor.open();
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const decisions = Array.from({ length: 50 }, (_, i) => auditor.signDecision({ ...decision(i) }));
      assert.ok(decisions.every((p) => p === decisions[0]), 'one batch for one turn');
      assert.equal(readFileSync(file, 'utf8'), '', 'nothing is written before the turn ends');
      await Promise.all(decisions);
      const lines = readFileSync(file, 'utf8').trim().split('\n');
      assert.equal(lines.length, 50);
      assert.deepEqual(lines.map((l) => parseRecord(l)?.request_id), decisions.map((_, i) => `r${i}`));
      const written = (await metrics.registry.getSingleMetric('signet_audit_records_written_total')!.get()).values[0]!.value;
      assert.equal(written, 50);
      await auditor.close();
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('fails closed on /dev/full (503, metric, one error line), and the opt-out answers anyway', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-audit-'));
    try {
      writeFileSync(join(dir, 'key'), SECRET);
      for (const failClosed of [true, false]) {
        const metrics = createMetrics();
        const log: string[] = [];
        const auditor = new Auditor({ file: '/dev/full', stdout: false, subjectKeyFile: join(dir, 'key'), failClosed }, quietLog(log), metrics);
        auditor.open();
        const first = auditor.signDecision(decision(1))!;
        if (failClosed) {
          await assert.rejects(first, (error: unknown) => error instanceof AuditUnavailableError && error.status === 503 && /ENOSPC/.test(error.message));
          await assert.rejects(auditor.signDecision(decision(2))!, AuditUnavailableError);
        } else {
          await first;
          await auditor.signDecision(decision(2));
        }
        const failed = (await metrics.registry.getSingleMetric('signet_audit_records_failed_total')!.get()).values[0]!.value;
        assert.equal(failed, 2);
        const errors = log.filter((l) => l.includes('"audit_write_failed"'));
        assert.equal(errors.length, 1, 'one error line, not one per record');
        assert.match(errors[0]!, failClosed ? /refused with 503/ : /WITHOUT a record/);
        await auditor.close();
      }
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('FileSink follows a moved file (logrotate without SIGHUP) and reopens on reopen()', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-audit-'));
    const file = join(dir, 'audit.log');
    const sink = new FileSink(file, 50);
    const write = (text: string) => new Promise<void>((resolve, reject) => sink.write(Buffer.from(text), (e) => (e ? reject(e) : resolve())));
    try {
      await write('one\n');
      renameSync(file, `${file}.1`);
      const deadline = Date.now() + 10_000;
      while (!existsSync(file) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(existsSync(file), 'a new file is created where the old one was');
      await write('two\n');
      renameSync(file, `${file}.2`);
      sink.reopen();
      await write('three\n');
      assert.equal(readFileSync(`${file}.1`, 'utf8'), 'one\n');
      assert.equal(readFileSync(`${file}.2`, 'utf8'), 'two\n');
      assert.equal(readFileSync(file, 'utf8'), 'three\n');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(rotatedFiles(file).map((f) => f.slice(dir.length + 1)).at(-1), 'audit.log');
    } finally {
      sink.close();
      rmSync(dir, { recursive: true });
    }
  });

  test('StdoutSink writes a batch whole, in chunks of whole lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-audit-'));
    const fd = openSync(join(dir, 'out'), 'w');
    try {
      const lines = Array.from({ length: 40 }, (_, i) => `{"type":"audit","n":${i},"pad":"${'x'.repeat(i * 10)}"}\n`);
      lines.push(`{"type":"audit","long":"${'y'.repeat(5000)}"}\n`);
      const data = Buffer.from(lines.join(''));
      await new Promise<void>((resolve, reject) => new StdoutSink(fd).write(data, (e) => (e ? reject(e) : resolve())));
      assert.equal(readFileSync(join(dir, 'out'), 'utf8'), lines.join(''));
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true });
    }
  });

  test('a file the process cannot open stops start-up with the field named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-audit-'));
    try {
      writeFileSync(join(dir, 'key'), SECRET);
      const auditor = new Auditor({ file: join(dir, 'no-such-dir', 'audit.log'), stdout: false, subjectKeyFile: join(dir, 'key'), failClosed: true }, quietLog(), createMetrics());
      refused(() => auditor.open(), 'audit.file');
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('findRecords reads plain and gzipped files and skips fragments', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-audit-'));
    try {
      const { gzipSync } = await import('node:zlib');
      const lines = [0, 1, 2].map((i) => serializeRecord(buildRecord(decision(i), HASH, Date.UTC(2026, 0, 1, 0, 0, i))));
      writeFileSync(join(dir, 'audit.log.1.gz'), gzipSync(lines[0]! + lines[1]!));
      writeFileSync(join(dir, 'audit.log'), `{"type":"aud\n${lines[2]!}`);
      const files = rotatedFiles(join(dir, 'audit.log'));
      assert.equal(files.length, 2);
      const all = await findRecords(files, {});
      assert.deepEqual(all.records.map((r) => r.request_id), ['r0', 'r1', 'r2']);
      assert.equal(all.skipped, 1);
      assert.deepEqual((await findRecords(files, { caller: 'c1' })).records.map((r) => r.request_id), ['r1']);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

function decision(i: number): SignDecision {
  return {
    requestId: `r${i}`, caller: `c${i}`, key: 'app',
    result: { token: token({ sub: `s${i}`, iat: 1, exp: 2, jti: `j${i}` }), kid: 'kid', alg: 'ES256', key: 'app', key_version: 1 },
  };
}
