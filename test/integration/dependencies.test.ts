// Dependencies: no high or critical advisory in what Signet runs (npm audit --omit=dev --audit-level=high), and
// node-vault's axios forced (package.json overrides) to a release that fixes the advisories axios had in the range
// node-vault 0.12 asks for (^1.13.6):
//   CVE-2026-40175 (GHSA-fvcv-3m26-pcqx)        fixed in 1.15.0
//   CVE-2026-42033 (GHSA-pf86-5x62-jrwf)        fixed in 1.15.1 (affected >= 1.0.0, < 1.15.1)
//   CVE-2026-44495 (GHSA-3g43-6gmg-66jw)        fixed in 1.15.2
//   CVE-2026-44492, CVE-2026-44494, -44496      fixed in 1.16.0
// npm audit needs the registry's advisory endpoint: when that endpoint cannot be reached the audit test is skipped
// with the reason (set SIGNET_REQUIRE_AUDIT=1, as CI should, to make that a failure); the version checks run offline.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ROOT, run } from '../harness/ops.ts';

/** The first axios release without any of the advisories listed above. */
const AXIOS_FLOOR = '1.16.0';

function compare(a: string, b: string): number {
  const pa = a.split('-')[0]!.split('.').map(Number);
  const pb = b.split('-')[0]!.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/** Every resolved version of `name` in an `npm ls --json --all` tree, with its path. */
function versionsOf(tree: any, name: string, path: string[] = []): Array<{ version: string; path: string }> {
  const found: Array<{ version: string; path: string }> = [];
  for (const [dep, node] of Object.entries<any>(tree?.dependencies ?? {})) {
    const here = [...path, dep];
    if (dep === name && typeof node.version === 'string') found.push({ version: node.version, path: here.join(' > ') });
    found.push(...versionsOf(node, name, here));
  }
  return found;
}

describe('dependencies', () => {
  test(`package.json forces axios to at least ${AXIOS_FLOOR} (overrides)`, () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { overrides?: Record<string, string> };
    const range = pkg.overrides?.axios;
    assert.ok(range, 'overrides.axios is set');
    const minimum = /^[\^~>=]*\s*(\d+\.\d+\.\d+)/.exec(range)?.[1];
    assert.ok(minimum, `overrides.axios "${range}" starts at a version`);
    assert.ok(compare(minimum, AXIOS_FLOOR) >= 0, `overrides.axios "${range}" allows releases below ${AXIOS_FLOOR}`);
    assert.ok(!/[|*x]|\s-\s|</.test(range), `overrides.axios "${range}" must be a single lower-bounded range`);
  });

  test(`every axios that npm resolved (node-vault's included) is ${AXIOS_FLOOR} or later`, async () => {
    const result = await run('npm', ['ls', 'axios', '--all', '--json'], { cwd: ROOT, timeoutMs: 60_000 });
    const tree = JSON.parse(result.stdout);
    const axios = versionsOf(tree, 'axios');
    assert.ok(axios.some((a) => a.path === 'node-vault > axios'), `node-vault's axios is in the tree: ${JSON.stringify(axios)}`);
    for (const { version, path } of axios) assert.ok(compare(version, AXIOS_FLOOR) >= 0, `${path} resolved to ${version}`);
    // And the copy Node actually loads for node-vault.
    const loaded = JSON.parse(readFileSync(join(ROOT, 'node_modules', 'axios', 'package.json'), 'utf8')) as { version: string };
    assert.ok(compare(loaded.version, AXIOS_FLOOR) >= 0, `node_modules/axios is ${loaded.version}`);
  });

  test('npm audit --omit=dev --audit-level=high: nothing high or critical', async (t) => {
    const result = await run('npm', ['audit', '--omit=dev', '--audit-level=high', '--json'], { cwd: ROOT, timeoutMs: 120_000 });
    let report: any;
    try {
      report = JSON.parse(result.stdout);
    } catch {
      report = undefined;
    }
    const unavailable = !report?.metadata && (report?.statusCode !== undefined || report?.error !== undefined || result.stdout.trim() === '');
    if (unavailable) {
      const reason = `the registry's audit endpoint answered ${report?.statusCode ?? report?.error?.code ?? 'nothing'} (${String(report?.message ?? result.stderr).split('\n')[0]})`;
      if (process.env.SIGNET_REQUIRE_AUDIT === '1') assert.fail(`npm audit could not run: ${reason}`);
      t.skip(`npm audit could not run here: ${reason}`);
      return;
    }
    const counts = report.metadata.vulnerabilities as Record<string, number>;
    const serious = Object.entries<any>(report.vulnerabilities ?? {})
      .filter(([, v]) => v.severity === 'high' || v.severity === 'critical')
      .map(([name, v]) => `${name} (${v.severity}, ${v.range})`);
    assert.deepEqual(serious, [], `npm audit: ${JSON.stringify(counts)}`);
    assert.equal((counts.high ?? 0) + (counts.critical ?? 0), 0);
    assert.equal(result.code, 0, result.stderr);
  });
});
