// Where a Signet under load leaves Vault's cores idle: a trace of its Vault calls and of its callers' requests.
//
// Record: start Signet with this file preloaded and SIGNET_CALL_TRACE set to a path prefix, e.g. through the bench:
//   SIGNET_CALL_TRACE=/tmp/trace BENCH_SIGNET_NODE_FLAGS="--import ./bench/call-trace.ts" BENCH_MODES=f … npm run bench
// Each Signet process writes <prefix>.<pid>.json when it exits: undici's request events (created, written, answer
// headers, answer complete) and the HTTP server's requests (arrived, answered), from diagnostics_channel, times in
// ms since the epoch. Nothing else is recorded: no path, header or body.
//
// Report: `node bench/call-trace.ts <prefix>.<pid>.json …` prints, per file:
// - the share of the active time with 0, 1, 2, … Vault calls in flight (written, not yet answered): with Vault on
//   the same cores, a call in flight is a Vault core at work, so time with fewer calls than cores is idle Vault time;
// - how long a call waits between its creation and its last byte written (undici writes on a reused keep-alive
//   connection only from the event loop's check phase, after everything else the poll phase holds);
// - how long after an answer that left at most one call out the next call was written;
// - for requests that reached Vault in two calls (a lone batch spread in two pieces, one client): medians of when
//   each piece was created and written, its answer, and the response, from the request's arrival.

import dc from 'node:diagnostics_channel';
import { readFileSync, writeFileSync } from 'node:fs';

type Kind = 'create' | 'written' | 'headers' | 'done' | 'error' | 'in' | 'out';
type Event = [time: number, kind: Kind, call: number];

function record(prefix: string): void {
  const events: Event[] = [];
  const origin = performance.timeOrigin;
  const calls = new WeakMap<object, number>();
  let next = 0;
  const callId = (request: object) => {
    let id = calls.get(request);
    if (id === undefined) calls.set(request, (id = next++));
    return id;
  };
  const channels: Array<[string, Kind]> = [
    ['undici:request:create', 'create'], ['undici:request:bodySent', 'written'], ['undici:request:headers', 'headers'],
    ['undici:request:trailers', 'done'], ['undici:request:error', 'error'],
  ];
  for (const [channel, kind] of channels) {
    dc.subscribe(channel, (message) => events.push([origin + performance.now(), kind, callId((message as { request: object }).request)]));
  }
  dc.subscribe('http.server.request.start', () => events.push([origin + performance.now(), 'in', -1]));
  dc.subscribe('http.server.response.finish', () => events.push([origin + performance.now(), 'out', -1]));
  let written = false;
  const write = () => {
    if (written) return;
    written = true;
    writeFileSync(`${prefix}.${process.pid}.json`, JSON.stringify(events));
  };
  process.on('exit', write);
  // Signet's own SIGTERM handler exits once it has drained; the file is written first in case it does not.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.prependListener(signal, write);
}

const ms = (value: number) => value.toFixed(3);

/** `percentile` is bench/lib.ts's, passed in: lib.ts loads Signet's config module, which the preload must not. */
function report(file: string, percentile: (sorted: number[], p: number) => number): string[] {
  const events = (JSON.parse(readFileSync(file, 'utf8')) as Event[]).sort((a, b) => a[0] - b[0]);
  const lines = [`${file}:`];
  const at = (kind: Kind) => new Map(events.filter((e) => e[1] === kind).map((e) => [e[2], e[0]]));
  const created = at('create');
  const written = at('written');
  const answered = new Map([...at('error'), ...at('headers')]);
  const calls = [...written.keys()].filter((id) => answered.has(id));
  if (calls.length === 0) return [...lines, '  no Vault call was answered'];

  // Calls in flight over time; a stretch with none for more than 20 ms is a pause between measurements, left out.
  const edges = calls.flatMap((id): Array<[number, number]> => [[written.get(id)!, 1], [answered.get(id)!, -1]]).sort((a, b) => a[0] - b[0]);
  const share = new Map<number, number>();
  let inFlight = 0;
  let last = edges[0]![0];
  let active = 0;
  for (const [time, change] of edges) {
    const span = time - last;
    if (!(inFlight === 0 && span > 20)) {
      share.set(inFlight, (share.get(inFlight) ?? 0) + span);
      active += span;
    }
    inFlight += change;
    last = time;
  }
  lines.push(`  Vault calls in flight over ${ms(active / 1000)} s of activity (${calls.length} calls): `
    + [...share].sort((a, b) => a[0] - b[0]).map(([n, t]) => `${n}: ${(100 * t / active).toFixed(1)} %`).join(', '));

  const atVault = calls.map((id) => answered.get(id)! - written.get(id)!).sort((a, b) => a - b);
  lines.push(`  a call at Vault (written to answered), ms: p10 ${ms(percentile(atVault, 10))}, p50 ${ms(percentile(atVault, 50))}, p90 ${ms(percentile(atVault, 90))}`);
  const waits = calls.filter((id) => created.has(id)).map((id) => written.get(id)! - created.get(id)!).sort((a, b) => a - b);
  lines.push(`  created to written, ms: p50 ${ms(percentile(waits, 50))}, p90 ${ms(percentile(waits, 90))}, p99 ${ms(percentile(waits, 99))}; `
    + [0.1, 0.5, 1, 2].map((bound) => `${(100 * waits.filter((w) => w <= bound).length / waits.length).toFixed(0)} % within ${bound} ms`).join(', '));

  // After an answer that left at most one call at Vault: how long until the next call was written.
  const order = calls.flatMap((id): Array<[number, 'written' | 'answered']> => [[written.get(id)!, 'written'], [answered.get(id)!, 'answered']])
    .sort((a, b) => a[0] - b[0]);
  const gaps: number[] = [];
  inFlight = 0;
  // Answers since the last write that left at most one call out; each one's gap ends at the next write.
  let leftAlone: number[] = [];
  for (const [time, kind] of order) {
    if (kind === 'written') {
      for (const answered of leftAlone) if (time - answered < 20) gaps.push(time - answered);
      leftAlone = [];
      inFlight++;
    } else if (--inFlight <= 1) {
      leftAlone.push(time);
    }
  }
  gaps.sort((a, b) => a - b);
  if (gaps.length > 0) {
    const mean = gaps.reduce((sum, gap) => sum + gap, 0) / gaps.length;
    lines.push(`  answer leaving <= 1 call out to the next call written, ms: p50 ${ms(percentile(gaps, 50))}, p90 ${ms(percentile(gaps, 90))}, mean ${ms(mean)} (${gaps.length} answers)`);
  }

  // One client's requests that reached Vault in two calls: the events between the request's arrival and its answer.
  const requests: Array<{ arrived: number; answered?: number; events: Event[] }> = [];
  let open: (typeof requests)[number] | undefined;
  for (const event of events) {
    if (event[1] === 'in') requests.push((open = { arrived: event[0], events: [] }));
    else if (event[1] === 'out' && open) {
      open.answered = event[0];
      open = undefined;
    } else open?.events.push(event);
  }
  const twoCalls = requests.filter((r) => r.answered !== undefined && r.events.filter((e) => e[1] === 'create').length === 2);
  if (twoCalls.length > requests.length / 2) {
    const nth = (r: (typeof twoCalls)[number], kind: Kind, n: number) => (r.events.filter((e) => e[1] === kind)[n]?.[0] ?? NaN) - r.arrived;
    const median = (values: number[]) => ms(percentile(values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b), 50));
    lines.push(`  requests in two Vault calls (${twoCalls.length} of ${requests.length}), medians from arrival, ms: `
      + `piece 1 created ${median(twoCalls.map((r) => nth(r, 'create', 0)))}, written ${median(twoCalls.map((r) => nth(r, 'written', 0)))}; `
      + `piece 2 created ${median(twoCalls.map((r) => nth(r, 'create', 1)))}, written ${median(twoCalls.map((r) => nth(r, 'written', 1)))}; `
      + `answers ${median(twoCalls.map((r) => nth(r, 'headers', 0)))} and ${median(twoCalls.map((r) => nth(r, 'headers', 1)))}; `
      + `response ${median(twoCalls.map((r) => r.answered! - r.arrived))}`);
  }
  return lines;
}

if (import.meta.main) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    process.stderr.write('usage: node bench/call-trace.ts <trace file>… (see the comment at the top of this file)\n');
    process.exit(2);
  }
  const { percentile } = await import('./lib.ts');
  process.stdout.write(`${files.flatMap((file) => report(file, percentile)).join('\n')}\n`);
} else if (process.env.SIGNET_CALL_TRACE) {
  record(process.env.SIGNET_CALL_TRACE);
}
