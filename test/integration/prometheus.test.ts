// deploy/prometheus/ with the tool of its ecosystem: `promtool check rules`, `promtool test rules` (the unit tests
// in signet-rules.test.yml), and `promtool check metrics` on a scrape of a running Signet against a real Vault.
// promtool comes from Debian's `prometheus` package; when it is not on PATH and this runs as root, the test installs
// it (apt-get update, apt-get install -y prometheus) and fails with apt's exact output if that fails. apt waits up to
// 5 minutes for the dpkg lock, which another test file installing its tool at the same time may hold.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { startVault, type TestVault } from '../harness/vault.ts';
import { startSignet, type TestSignet } from '../harness/signet.ts';
import { ROOT, dashboardQueries, exportedMetrics, isExported, promqlMetricNames, run, which } from '../harness/ops.ts';

const DIR = join(ROOT, 'deploy', 'prometheus');
const RULES = join(DIR, 'signet-rules.yml');
const RULE_TESTS = join(DIR, 'signet-rules.test.yml');

async function ensurePromtool(): Promise<string> {
  const found = await which('promtool');
  if (found) return found;
  if (process.getuid?.() !== 0) {
    assert.fail('promtool is not on PATH and this test is not root, so it cannot install it: apt-get install -y prometheus (Debian ships promtool in it)');
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update'], { env, timeoutMs: 300_000 });
  assert.equal(update.code, 0, `apt-get update failed (exit ${update.code}):\n${update.stdout}\n${update.stderr}`);
  const install = await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', 'prometheus'], { env, timeoutMs: 600_000 });
  assert.equal(install.code, 0, `apt-get install -y prometheus failed (exit ${install.code}):\n${install.stdout}\n${install.stderr}`);
  const installed = await which('promtool');
  assert.ok(installed, `apt-get install -y prometheus succeeded but promtool is not on PATH:\n${install.stdout}`);
  return installed;
}

describe('Prometheus: rules, rule unit tests, and the metrics Signet exports', () => {
  let promtool: string;
  let vault: TestVault;
  let signet: TestSignet;
  let installMs = 0;

  before(async () => {
    const started = performance.now();
    promtool = await ensurePromtool();
    installMs = Math.round(performance.now() - started);
  });

  after(async () => {
    await signet?.close();
    await vault?.stop();
    if (installMs > 1000) process.stderr.write(`# prometheus: promtool found or installed in ${installMs} ms\n`);
  });

  test('promtool check rules', async () => {
    const result = await run(promtool, ['check', 'rules', RULES]);
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /SUCCESS: \d+ rules found/);
  });

  test('promtool test rules (signet-rules.test.yml)', async () => {
    const result = await run(promtool, ['test', 'rules', RULE_TESTS], { cwd: DIR });
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /SUCCESS/);
  });

  test('the rules cover every required condition, use only metrics Signet exports, and each alert has a unit test', async () => {
    const rules = (parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string; expr: string }> }> }).groups.flatMap((g) => g.rules);
    const alerts = rules.map((r) => r.alert);
    for (const required of [
      'SignetVaultUnreachable', 'SignetSignErrorRatioHigh', 'SignetSigningKeyOlderThanRotationPolicy', 'SignetKeyRotationStuck',
      'SignetVaultTokenTtlLow', 'SignetKeyStateStale', 'SignetKeyNotLoaded',
    ]) assert.ok(alerts.includes(required), `${required} missing`);
    const exported = await exportedMetrics();
    for (const rule of rules) {
      const names = promqlMetricNames(rule.expr);
      assert.ok(names.length > 0, `${rule.alert}: no metric in ${rule.expr}`);
      for (const name of names) assert.ok(isExported(name, exported), `${rule.alert}: ${name} is not a metric Signet exports`);
    }
    const tests = parse(readFileSync(RULE_TESTS, 'utf8')) as { tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }> };
    const firing = new Set(tests.tests.flatMap((t) => t.alert_rule_test).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname));
    for (const alert of alerts) assert.ok(firing.has(alert!), `${alert} has no test in which it fires`);
  });

  test('every query of the Grafana dashboard parses as PromQL (promtool check rules, as recording rules)', async () => {
    const queries = dashboardQueries().filter((q) => !q.variable);
    // Grafana's variables, as Grafana substitutes them.
    const exprs = queries.map((q) => q.expr.replaceAll('$__rate_interval', '1m').replace(/\$(job|instance|key)\b/g, '.*'));
    const dir = mkdtempSync(join(tmpdir(), 'signet-dashboard-promql-'));
    try {
      const file = join(dir, 'dashboard-queries.yml');
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `signet_dashboard:query_${i}`, expr })) }] }));
      const result = await run(promtool, ['check', 'rules', file]);
      assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
      assert.match(result.stdout, new RegExp(`SUCCESS: ${exprs.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('promtool check metrics passes on a scrape of a running Signet (after sign and verify traffic)', async () => {
    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
    await vault.createKey('app-hmac', 'hmac');
    signet = await startSignet(vault, [{ name: 'app' }, { name: 'app-hmac' }], { config: { log_level: 'warn' } });
    for (const key of ['app', 'app-hmac', 'nope']) {
      const signed = await signet.post(`/v1/sign/${key}`, { claims: { sub: 'metrics' } });
      if (key !== 'nope') {
        assert.equal(signed.status, 200);
        await signet.post('/v1/verify', { token: signed.body.token });
      }
    }
    await signet.post('/v1/verify', { token: 'not.a.token' });
    const scrape = await signet.get('/metrics');
    assert.equal(scrape.status, 200);
    // Every metric family is in the scrape; the sign histogram has its sub-millisecond buckets.
    for (const name of (await exportedMetrics()).keys()) assert.match(scrape.text, new RegExp(`^# TYPE ${name} `, 'm'));
    assert.match(scrape.text, /^signet_sign_duration_seconds_bucket\{le="0\.0001",key="app"\} \d+$/m);
    const result = await run(promtool, ['check', 'metrics'], { input: scrape.text });
    assert.equal(result.code, 0, `promtool check metrics (exit ${result.code}):\n${result.stdout}${result.stderr}`);
    assert.equal(`${result.stdout}${result.stderr}`.trim(), '', 'promtool check metrics printed findings');
  });
});
