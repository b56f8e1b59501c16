// Reading Signet's /metrics as a test would in Prometheus: one sample by name and exact labels, or the sum of a
// metric over every label set. Absent samples read as 0 (a counter not yet incremented has no sample).

import type { TestSignet } from './signet.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (the subset prom-client writes: no timestamps, no exemplars). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sample of `name` whose labels include `labels` (all of them, summed if several match); 0 when none does. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  return parseMetrics(text)
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** Scrapes Signet's /metrics once and reads one metric from it (see metricValue). */
export async function scrape(signet: TestSignet, name: string, labels: Record<string, string> = {}): Promise<number> {
  const answer = await signet.get('/metrics');
  if (answer.status !== 200) throw new Error(`/metrics answered ${answer.status}`);
  return metricValue(answer.text, name, labels);
}
