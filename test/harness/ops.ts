// Helpers for the operations tests (deploy/, Dockerfile, policies): raw Vault calls that return the status instead
// of throwing, HCL policy parsing, PromQL metric-name extraction, and running a command with its output kept.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createMetrics } from '../../src/observability/metrics.ts';

export const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');
export const DASHBOARD_FILE = join(ROOT, 'deploy', 'grafana', 'signet-dashboard.json');

export { vaultRaw } from '../../src/vault/dev-server.ts';

/** The `path "…" { capabilities = [...] }` rules of an HCL policy, comments ignored: path → sorted capabilities. */
export function policyRules(hcl: string): Map<string, string[]> {
  const text = hcl.split('\n').map((line) => line.replace(/^\s*#.*$/, '')).join('\n');
  const rules = new Map<string, string[]>();
  const re = /path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}/g;
  for (const match of text.matchAll(re)) {
    const caps = [...match[2]!.matchAll(/"([^"]+)"/g)].map((m) => m[1]!).sort();
    if (rules.has(match[1]!)) throw new Error(`path "${match[1]}" appears twice`);
    rules.set(match[1]!, caps);
  }
  const blocks = (text.match(/\bpath\s+"/g) ?? []).length;
  if (blocks !== rules.size) throw new Error(`${blocks} path blocks but ${rules.size} parsed as path { capabilities = [...] }`);
  return rules;
}

/** Every metric name Signet exports: its own and prom-client's default signet_process_* and signet_nodejs_* ones, by type. */
export async function exportedMetrics(): Promise<Map<string, string>> {
  const metrics = createMetrics();
  const json = await metrics.registry.getMetricsAsJSON();
  return new Map(json.map((m) => [m.name, String(m.type)]));
}

const PROMQL_WORDS = new Set([
  // aggregations and keywords
  'sum', 'avg', 'min', 'max', 'count', 'count_values', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'group',
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan',
  // functions
  'rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'changes', 'resets', 'histogram_quantile', 'abs', 'absent',
  'absent_over_time', 'ceil', 'floor', 'round', 'clamp', 'clamp_min', 'clamp_max', 'time', 'timestamp', 'vector',
  'scalar', 'label_replace', 'label_join', 'sort', 'sort_desc', 'avg_over_time', 'min_over_time', 'max_over_time',
  'sum_over_time', 'count_over_time', 'last_over_time', 'present_over_time', 'quantile_over_time', 'predict_linear',
  'day_of_month', 'label_values', 'query_result', 'metrics', 'ln', 'log2', 'log10', 'exp', 'sqrt', 'sgn',
]);

/** The metric names a PromQL expression (or a Grafana template query) refers to. */
export function promqlMetricNames(expr: string): string[] {
  let text = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ') // string literals
    .replace(/\$\{[^}]*\}|\$[A-Za-z_]\w*/g, ' ') // Grafana variables
    .replace(/\[[^\]]*\]/g, ' ') // range selectors and subqueries
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  // label_values(metric, label): the second argument is a label.
  text = text.replace(/label_values\s*\(\s*([A-Za-z_:][\w:]*)\s*,\s*\w+\s*\)/g, ' $1 ');
  const names = new Set<string>();
  for (const match of text.matchAll(/(?<![\w.])([A-Za-z_:][\w:]*)(?![\w])/g)) {
    const word = match[1]!;
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    if (/^\d/.test(word)) continue;
    if (/^(s|m|h|d|w|y|ms|e)$/.test(word)) continue; // duration units after a number, exponent
    names.add(word);
  }
  return [...names];
}

/** Checks one name against the exported metrics: histogram series may end in _bucket, _sum, _count. */
export function isExported(name: string, exported: Map<string, string>): boolean {
  if (exported.has(name)) return true;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && (exported.get(base) === 'histogram' || exported.get(base) === 'summary');
}

export interface RunResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Runs a command without a shell; resolves with its exit code and output (never rejects on a non-zero exit). */
export function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; uid?: number; gid?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 120_000, uid: options.uid, gid: options.gid,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('error', reject);
    child.stdin.on('error', () => { /* the command need not read its input (EPIPE) */ });
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Finds a program on PATH; undefined when absent. */
export async function which(program: string): Promise<string | undefined> {
  const result = await run('sh', ['-c', `command -v ${program}`]);
  return result.code === 0 ? result.stdout.trim() : undefined;
}

/** Every PromQL expression of the Grafana dashboard: panel targets, and template-variable queries (label_values). */
export function dashboardQueries(file = DASHBOARD_FILE): Array<{ where: string; expr: string; variable: boolean }> {
  const dashboard = JSON.parse(readFileSync(file, 'utf8')) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string; refId: string }> }>;
    templating: { list: Array<{ name: string; type: string; query: string | { query: string } }> };
  };
  const out: Array<{ where: string; expr: string; variable: boolean }> = [];
  for (const panel of dashboard.panels) {
    for (const t of panel.targets ?? []) out.push({ where: `panel "${panel.title}" ${t.refId}`, expr: t.expr, variable: false });
  }
  for (const v of dashboard.templating.list.filter((v) => v.type === 'query')) {
    out.push({ where: `variable $${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query.query, variable: true });
  }
  return out;
}
