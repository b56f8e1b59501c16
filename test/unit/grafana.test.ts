// deploy/grafana/signet-dashboard.json: a well-formed dashboard whose every query names only metrics Signet
// exports (src/observability/metrics.ts, prom-client's signet_process_* and signet_nodejs_* included), and that shows each of Signet's
// own metrics somewhere. test/integration/prometheus.test.ts also has promtool parse every query as PromQL.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DASHBOARD_FILE, dashboardQueries, exportedMetrics, isExported, promqlMetricNames } from '../harness/ops.ts';

interface Panel {
  id: number; type: string; title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Array<{ expr: string; refId: string; datasource?: { uid: string } }>;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as {
  title: string; uid: string; schemaVersion: number; panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: string | { query: string } }> };
};

test('the dashboard is well formed: title, uid, unique panel ids, a data-source variable, panels inside the 24-column grid', () => {
  assert.equal(dashboard.title, 'Signet');
  assert.match(dashboard.uid, /^[\w-]{1,40}$/);
  assert.ok(dashboard.schemaVersion >= 36);
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids repeat');
  assert.ok(dashboard.templating.list.some((v) => v.type === 'datasource' && v.name === 'datasource'));
  for (const panel of dashboard.panels) {
    const { x, w, h } = panel.gridPos;
    assert.ok(x >= 0 && w > 0 && h > 0 && x + w <= 24, `panel "${panel.title}" leaves the grid: ${JSON.stringify(panel.gridPos)}`);
    if (panel.type === 'row') continue;
    assert.equal(panel.datasource?.uid, '${datasource}', `panel "${panel.title}" does not use the data-source variable`);
    assert.ok((panel.targets ?? []).length > 0, `panel "${panel.title}" has no query`);
  }
});

test('no two panels overlap', () => {
  const boxes = dashboard.panels.map((p) => ({ title: p.title, ...p.gridPos }));
  for (const [i, a] of boxes.entries()) {
    for (const b of boxes.slice(i + 1)) {
      const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
      assert.ok(!overlap, `"${a.title}" overlaps "${b.title}"`);
    }
  }
});

test('every query names only metrics that Signet exports', async () => {
  const exported = await exportedMetrics();
  const queries = dashboardQueries();
  assert.ok(queries.length > 20, `${queries.length} queries`);
  for (const { where, expr } of queries) {
    const names = promqlMetricNames(expr);
    assert.ok(names.length > 0, `${where}: no metric in ${expr}`);
    for (const name of names) assert.ok(isExported(name, exported), `${where}: ${name} is not exported by Signet (${expr})`);
  }
});

test('each of Signet\'s own metrics appears on the dashboard', async () => {
  const exported = await exportedMetrics();
  const used = new Set(dashboardQueries().flatMap(({ expr }) => promqlMetricNames(expr)).map((n) => (isExported(n, exported) && !exported.has(n) ? n.replace(/_(bucket|sum|count)$/, '') : n)));
  const missing = [...exported.keys()].filter((name) => !/^signet_(process|nodejs)_/.test(name) && !used.has(name));
  assert.deepEqual(missing, []);
});

test('the metric-name extraction sees through PromQL syntax', () => {
  assert.deepEqual(promqlMetricNames('histogram_quantile(0.99, sum by (le, operation) (rate(signet_vault_request_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))'), ['signet_vault_request_duration_seconds_bucket']);
  assert.deepEqual(promqlMetricNames('count(signet_key_loaded{key=~"$key"} == 0) or vector(0)'), ['signet_key_loaded']);
  assert.deepEqual(promqlMetricNames('label_values(signet_vault_up{job=~"$job"}, instance)'), ['signet_vault_up']);
  assert.deepEqual(promqlMetricNames('a_total / on (x) group_left b_metric > 1e3'), ['a_total', 'b_metric']);
  assert.ok(!isExported('signet_sign_requests_total_bucket', new Map([['signet_sign_requests_total', 'counter']])));
  assert.ok(isExported('signet_sign_duration_seconds_count', new Map([['signet_sign_duration_seconds', 'histogram']])));
});
