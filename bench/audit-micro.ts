// `node bench/audit-micro.ts`: the audit trail's own cost, in one process, without HTTP or Vault (so it can be
// measured on a busy machine, where the end-to-end rows (e) of bench.ts are noisy): for batches of 1 (one client)
// and 64 records per event-loop turn (many clients), the wall time from signDecision() to its promise settling and
// the CPU time per record (building it, the HMAC of sub, one write(2) per batch to a file in the temp directory).

import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Auditor } from '../src/audit/auditor.ts';
import type { SignDecision } from '../src/audit/record.ts';
import { createLogger } from '../src/observability/logger.ts';
import { createMetrics } from '../src/observability/metrics.ts';
import { percentile } from './lib.ts';

const dir = mkdtempSync(join(tmpdir(), 'signet-audit-micro-'));
try {
  writeFileSync(join(dir, 'key'), 'audit-micro-subject-key-0123456789abcdef', { mode: 0o600 });
  const file = join(dir, 'audit.log');
  const auditor = new Auditor({ file, stdout: false, subjectKeyFile: join(dir, 'key'), failClosed: true }, createLogger('silent'), createMetrics());
  auditor.open();
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const decision = (i: number): SignDecision => ({
    requestId: crypto.randomUUID(), caller: 'local', key: 'bench-es256',
    result: {
      token: `${part({ alg: 'ES256', kid: 'k'.repeat(43), typ: 'JWT' })}.${part({ iss: 'https://bench', sub: `bench-user-${i % 500}`, scope: 'read', iat: now, nbf: now, exp: now + 300, jti: 'j'.repeat(22) })}.${'s'.repeat(86)}`,
      kid: 'k'.repeat(43), alg: 'ES256', key: 'bench-es256', key_version: 1,
    },
  });
  // Built beforehand, so that only the audit trail's work is timed.
  const decisions = Array.from({ length: 1024 }, (_, i) => decision(i));
  for (const batch of [1, 64]) {
    const rounds = batch === 1 ? 20_000 : 1_000;
    const latencies: number[] = [];
    for (let warm = 0; warm < 2; warm++) {
      latencies.length = 0;
      const cpu0 = process.cpuUsage();
      for (let r = 0; r < rounds; r++) {
        const started = performance.now();
        const pending = Array.from({ length: batch }, (_, i) => auditor.signDecision(decisions[(r * batch + i) % decisions.length]!));
        await Promise.all(pending);
        latencies.push((performance.now() - started) * 1000);
      }
      const cpu = process.cpuUsage(cpu0);
      if (warm === 1) {
        latencies.sort((a, b) => a - b);
        process.stdout.write(`${String(batch).padStart(2)} record(s) per turn: p50 ${percentile(latencies, 50).toFixed(1)} us from signDecision to written, `
          + `p99 ${percentile(latencies, 99).toFixed(1)} us; CPU ${((cpu.user + cpu.system) / (rounds * batch)).toFixed(1)} us per record\n`);
      }
    }
  }
  await auditor.close();
  process.stdout.write(`${(statSync(file).size / 1024 / 1024).toFixed(1)} MB written; ${statSync(file).size / (2 * (20_000 + 64_000))} bytes per record\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
