// `npm run bench`: Signet against the same clients calling Vault directly, side by side in one run (issue 5,
// DESIGN §9). Starts its own Vault dev server and three Signet processes (batching off, on, and on with the audit
// trail), and measures for ES256, RS256 and EdDSA at 1, 16 and 64 concurrent clients:
//   (a) clients calling Vault transit/sign directly, one token per request, keep-alive;
//   (b) clients calling Vault with batch_input of 64 items per request (Vault's own capacity; measured in whole
//       rounds, as a batch can take seconds);
//   (c) Signet with batching off;  (d) Signet with batching on;  (e) Signet with batching on and the audit trail
//   writing to a file (issue 15: at most 10 % fewer tokens/s than (d) at 64 clients, at most +0.05 ms p50 at 1);
//   (f) at 1 and 16 clients: callers sending batch_input of 64 claim sets to Signet (batching on; issue 14);
//   (g) the same batches to a bare Node JWT signer (bench/floor-proxy.ts): the least any Node sidecar does with
//       them (parse, header.payload, one transit call, tokens as JSON), so the ceiling of (f) / (b) on these cores;
//   (u) at 1 client: Signet (batching on) listening on a unix socket instead of TCP loopback;
//   and at 1 client (p): Vault through a bare node:http + undici proxy, the latency floor of any Node sidecar;
// then local verification (in-process verifier.verify against raw crypto.verify, one core; POST /v1/verify over
// HTTP) and Signet's RSS idle and under load. Prints tables and the issue's target ratios, marked met or missed.
//
// BENCH_DURATION=seconds (default 3) sets the length of each measurement (after a 1 s warm-up).
// BENCH_ALGS=ES256,RS256 and BENCH_CLIENTS=1,64 narrow the matrix (the target ratios then show n/a where a
// figure is missing); BENCH_ALGS=ES384 adds that alg (not in the default matrix).
// BENCH_SIGNET_NODE_FLAGS="--max-semi-space-size=2" passes Node flags to the Signet processes only;
// BENCH_BATCHER='{"maxInFlight":2}' sets batcher options, and BENCH_BATCHER_ALT='{...}' starts a second Signet with
// those measured as (h), (f)'s batches in the same rounds; BENCH_ALT_TREE=/path/to/checkout runs
// (h)'s Signet from another checkout of this repository (a worktree of an older commit, its node_modules linked),
// for a paired comparison of two versions of the code under the same load; BENCH_ALT_NODE_FLAGS="--single-threaded-gc"
// starts (h)'s Signet with those Node flags instead of BENCH_SIGNET_NODE_FLAGS (V8 options, paired the same way);
// BENCH_VERIFY=0 skips verification;
// BENCH_MODES=a,d,e measures only those modes; BENCH_REPEAT=5 measures them 5 times in turn (this shared VM's
// speed drifts from minute to minute): a tokens/s ratio is then the median of the rounds' own ratios, counting only
// the rounds where neither measurement saw more than BENCH_OTHER_LIMIT % of one core (default 15) of other load
// (mostly the hypervisor's steal, which slows one mode of a pair and not the other; the figure says how many
// rounds counted, and is n/a when none did), other figures the round with the median tokens/s. BENCH_PIN=1 pins
// Vault to CPU 0 and everything else (Signet, the proxy, the load generator) to CPU 1, as when Vault runs on its own
// machine: the ratios then show whether Signet keeps Vault busy, apart from the CPU Signet and Vault otherwise take
// from each other.
// It is a benchmark, not a test: nothing here asserts timings.

import autocannon from 'autocannon';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { algSpec, type JwsAlg } from '../src/jwt/algorithms.ts';
import { findVaultBinary, startDevVault, vaultApi, type VaultServer } from '../src/vault/dev-server.ts';
import { cpuSeconds, fixed, machineBusySeconds, mb, percentile, rssBytes, Samples, sleep, startChild, table, thousands, waitIdle, type Child } from './lib.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');

function numberEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number (got "${raw}")`);
  return value;
}

const DURATION = numberEnv('BENCH_DURATION', 3);
const WARMUP = 1;
const BATCH_ITEMS = 64;

interface AlgCase { alg: JwsAlg; key: string; type: string }
const ALL_CASES: AlgCase[] = [
  { alg: 'ES256', key: 'bench-es256', type: 'ecdsa-p256' },
  { alg: 'RS256', key: 'bench-rs256', type: 'rsa-2048' },
  { alg: 'EdDSA', key: 'bench-eddsa', type: 'ed25519' },
  // A costlier ECDSA curve (about 0.3 ms of Vault CPU a signature): measured only when BENCH_ALGS names it.
  { alg: 'ES384', key: 'bench-es384', type: 'ecdsa-p384' },
];
const DEFAULT_ALGS = ['ES256', 'RS256', 'EDDSA'];
const ALGS = process.env.BENCH_ALGS?.split(',').map((s) => s.trim().toUpperCase()) ?? DEFAULT_ALGS;
const CASES = ALL_CASES.filter((c) => ALGS.includes(c.alg.toUpperCase()));
/**
 * The keys every Signet of the run holds: the default matrix's (whichever BENCH_ALGS measures, so the figures of
 * one alg do not depend on which others are measured) and any other alg measured.
 */
const KEY_CASES = ALL_CASES.filter((c) => DEFAULT_ALGS.includes(c.alg.toUpperCase()) || CASES.includes(c));
/** Node flags from an environment variable (space-separated); undefined when it is not set. */
function flagsEnv(name: string): string[] | undefined {
  return process.env[name]?.split(/\s+/).filter(Boolean);
}
/** Extra Node flags for the Signet processes only (to try V8 settings), e.g. "--max-semi-space-size=2". */
const SIGNET_FLAGS = flagsEnv('BENCH_SIGNET_NODE_FLAGS') ?? [];
/** BENCH_VERIFY=0 skips the verification measurements (e.g. to profile signing alone). */
const VERIFY = process.env.BENCH_VERIFY !== '0';
const PIN = process.env.BENCH_PIN === '1';
/** BENCH_REPEAT=n measures each case's modes n times, alternating (b, f, b, f, …); targets use each mode's median. */
const REPEAT = Math.floor(numberEnv('BENCH_REPEAT', 1));
/** Other load (% of one core) above which a round's pair of measurements does not count toward a ratio (BENCH_REPEAT). */
const OTHER_LIMIT = numberEnv('BENCH_OTHER_LIMIT', 15);
/** The machine's cores, read before BENCH_PIN narrows this process to one. */
const CORES = availableParallelism();
const CLIENTS = process.env.BENCH_CLIENTS ? process.env.BENCH_CLIENTS.split(',').map(Number).filter((n) => n > 0) : [1, 16, 64];

type Mode = 'a' | 'p' | 'b' | 'c' | 'd' | 'u' | 'e' | 'f' | 'g' | 'h';
/** Batcher options of a second Signet measured as (h) with (f)'s batches, in the same rounds: a paired comparison. */
const BATCHER_ALT = process.env.BENCH_BATCHER_ALT;
/** Another checkout whose bench/signet-server.ts is (h)'s Signet: two versions of the code, paired. */
const ALT_TREE = process.env.BENCH_ALT_TREE || undefined;
/** Node flags of (h)'s Signet, instead of SIGNET_FLAGS: V8 options paired under the same load. */
const ALT_FLAGS = flagsEnv('BENCH_ALT_NODE_FLAGS');
/**
 * Modes measured at every client count; 'p' (the floor of a bare Node proxy) and 'u' (Signet's unix socket listener)
 * only at 1 client, 'f', 'g' and 'h' at 1 and 16 (BENCH_BATCH_CLIENTS); 'h' only with BENCH_BATCHER_ALT, BENCH_ALT_TREE
 * or BENCH_ALT_NODE_FLAGS.
 */
const MODES: Mode[] = (['a', 'p', 'b', 'c', 'd', 'u', 'e', 'f', 'g', 'h'] as Mode[])
  .filter((m) => !process.env.BENCH_MODES || process.env.BENCH_MODES.split(',').map((s) => s.trim().toLowerCase()).includes(m))
  .filter((m) => m !== 'h' || BATCHER_ALT || ALT_TREE || ALT_FLAGS);
/** Client counts of the callers' batches (f, g, h): the issue's 1 and 16, or BENCH_BATCH_CLIENTS=4,8 for others. */
const BATCH_CLIENTS = new Set(process.env.BENCH_BATCH_CLIENTS ? process.env.BENCH_BATCH_CLIENTS.split(',').map(Number).filter((n) => n > 0) : [1, 16]);
const MODE_LABEL: Record<Mode, string> = {
  a: '(a) Vault direct, 1 token/request',
  p: '(p) Vault via a bare Node proxy',
  b: `(b) Vault direct, batch_input ${BATCH_ITEMS}`,
  c: '(c) Signet, batching off',
  d: '(d) Signet, batching on',
  u: '(u) Signet on a unix socket',
  e: '(e) Signet, batching on, audit file',
  f: `(f) Signet, batch_input ${BATCH_ITEMS}`,
  g: `(g) bare Node JWT signer, batch_input ${BATCH_ITEMS}`,
  h: `(h) Signet, ${ALT_TREE ? 'BENCH_ALT_TREE' : BATCHER_ALT ? 'BENCH_BATCHER_ALT' : 'BENCH_ALT_NODE_FLAGS'}, batch_input ${BATCH_ITEMS}`,
};

interface LoadResult {
  tokensPerSec: number;
  requestsPerSec: number;
  p50: number;
  p99: number;
  ok: number;
  failed: number;
  /** CPU use during the measurement, percent of one core. */
  vaultCpu: number;
  signetCpu?: number;
  loadCpu: number;
  /** CPU everything else on the machine used meanwhile (other processes, interrupts), percent of one core. */
  otherCpu: number;
  rssMax?: number;
  /** Mean items per Vault call Signet made during the measurement (from its /metrics). */
  meanBatch?: number;
  /** Signet's adaptive limit on full batches at Vault at the end of the measurement (signet_vault_sign_calls_limit). */
  callLimit?: number;
  /** Tokens Signet refused inside answered batches (batch_results items with an error), from its /metrics. */
  failedItems?: number;
}

interface Row extends LoadResult { alg: JwsAlg; clients: number; mode: Mode; round: number }

// ---------------------------------------------------------------------------------------------------------
// Everything started here is stopped here: on success, on error and on Ctrl-C.

const cleanups: Array<() => Promise<void>> = [];
let currentLoad: autocannon.Instance | undefined;
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    currentLoad?.stop();
    for (const stop of cleanups.reverse()) {
      try {
        await stop();
      } catch (error) {
        process.stderr.write(`bench: cleanup: ${(error as Error).message}\n`);
      }
    }
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping Vault and Signet\n`);
    void cleanup().finally(() => process.exit(130));
  });
}

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
const out = (text = '') => process.stdout.write(`${text}\n`);

// ---------------------------------------------------------------------------------------------------------

async function machine(vaultBinary: string): Promise<string[]> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const processors = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
  let vaultVersion = 'unknown';
  try {
    vaultVersion = (await promisify(execFile)(vaultBinary, ['version'], { timeout: 10_000 })).stdout.trim();
  } catch { /* keep unknown */ }
  const autocannonVersion = (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version: string }).version;
  const altParts = [ALT_TREE && `from ${ALT_TREE}`, BATCHER_ALT && `with ${BATCHER_ALT}`, ALT_FLAGS && `node ${ALT_FLAGS.join(' ') || '(no extra flags)'}`].filter(Boolean);
  return [
    `CPU:        ${model}`,
    `cores:      ${availableParallelism()} available (${processors} in /proc/cpuinfo)`,
    `kernel:     Linux ${release()}; load average at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    `Node:       ${process.version} (${process.execPath})`,
    `Vault:      ${vaultVersion} (${vaultBinary}), dev server, in-memory storage, no audit device`,
    `load:       autocannon ${autocannonVersion} in the benchmark process; keep-alive, pipelining 1`,
    `Signet:     one process per configuration, node ${SIGNET_FLAGS.length ? SIGNET_FLAGS.join(' ') : '(no extra flags)'} bench/signet-server.ts`
      + `, batcher options ${process.env.BENCH_BATCHER || '(defaults)'}`
      + `${altParts.length ? `; (h) ${altParts.join(', ')}` : ''}`,
    `duration:   ${DURATION} s per measurement after a ${WARMUP} s warm-up (BENCH_DURATION); (b) in whole rounds lasting at least`
      + ` as long; each phase starts once Vault and the sidecar are idle again`,
    `cpus:       ${PIN ? 'pinned (BENCH_PIN=1): Vault on CPU 0; Signet, the proxy and the load generator on CPU 1' : 'not pinned: Vault, Signet and the load generator share every core'}`,
  ];
}

/** GET over TCP, or over a unix socket (then `url` is http://localhost/...). */
async function get(url: string, socketPath?: string): Promise<{ status: number; text: string }> {
  const dispatcher = socketPath ? new Agent({ connect: { socketPath } }) : undefined;
  try {
    const response = await request(url, { dispatcher, signal: AbortSignal.timeout(5000) });
    return { status: response.statusCode, text: await response.body.text() };
  } finally {
    await dispatcher?.close();
  }
}

/** Pins every thread of a process to one CPU (taskset -a). */
async function pin(pid: number, cpu: number): Promise<void> {
  await promisify(execFile)('taskset', ['-a', '-p', '-c', String(cpu), String(pid)]);
}

async function waitReady(url: string, child: Child, socketPath?: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  let last = '';
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null) throw new Error(`Signet exited with code ${child.process.exitCode}`);
    try {
      const response = await get(`${url}/readyz`, socketPath);
      last = response.text;
      if (response.status === 200) return;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`Signet at ${url} did not become ready within 60 s: ${last}`);
}

interface Memory { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number }
interface Signet { child: Child; url: string; pid: number; socketPath?: string; idleRss?: number; idleMemory?: Memory }

/** process.memoryUsage() of a Signet process (bench/signet-server.ts answers "mem" on its stdin). */
async function memoryOf(signet: Signet): Promise<Memory> {
  signet.child.send('mem');
  return (await signet.child.nextMessage()).memory as Memory;
}

async function startSignet(vault: VaultServer, batching: boolean, keys: unknown[], audit?: { file: string; subject_key_file: string }, socketPath?: string, batcher = process.env.BENCH_BATCHER ?? '', tree?: string, nodeArgs = SIGNET_FLAGS): Promise<Signet> {
  const child = await startChild(tree ? join(tree, 'bench', 'signet-server.ts') : join(HERE, 'signet-server.ts'), {
    label: `signet batching ${batching ? 'on' : 'off'}${audit ? ', audit' : ''}${socketPath ? ', unix socket' : ''}${batcher ? `, ${batcher}` : ''}${tree ? `, ${tree}` : ''}${nodeArgs.length ? `, ${nodeArgs.join(' ')}` : ''}`,
    nodeArgs,
    env: {
      BENCH_VAULT_ADDR: vault.address,
      BENCH_VAULT_TOKEN: vault.rootToken,
      BENCH_KEYS: JSON.stringify(keys),
      BENCH_BATCHING: batching ? 'on' : 'off',
      BENCH_BATCHER: batcher,
      BENCH_AUDIT: audit ? JSON.stringify(audit) : '',
      BENCH_SOCKET: socketPath ?? '',
    },
  });
  cleanups.push(() => child.stop());
  const url = socketPath ? 'http://localhost' : `http://127.0.0.1:${child.hello.port as number}`;
  await waitReady(url, child, socketPath);
  return { child, url, pid: child.pid, socketPath };
}

async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : undefined };
}

// ---------------------------------------------------------------------------------------------------------
// One measurement: a warm-up run, then a measured run whose every response time is recorded (autocannon's own
// histogram has 1 ms resolution, too coarse for sub-millisecond latencies).

interface LoadSpec {
  url: string;
  headers: Record<string, string>;
  body: string;
  connections: number;
  tokensPerRequest: number;
  vaultPid: number;
  signetPid?: number;
  /** Signet's base URL and key name, to read the batch size histogram from /metrics. */
  signetMetrics?: { url: string; key: string; socketPath?: string };
  /** Connect over this unix socket (url then names http://localhost). */
  socketPath?: string;
  /**
   * Measure whole rounds (every client sends the same number of requests and all answers are awaited) instead of
   * a fixed time: for batch_input requests that take seconds, a time window would cut off a large share of work.
   */
  rounds?: boolean;
}

/**
 * Sum and count of signet_sign_batch_size for one key, and its signs that did not succeed (every outcome of
 * signet_sign_requests_total but ok), from Signet's /metrics.
 */
async function batchStats(target: { url: string; key: string; socketPath?: string }): Promise<{ sum: number; count: number; failed: number; callLimit: number }> {
  const lines = (await get(`${target.url}/metrics`, target.socketPath)).text.split('\n');
  const number = (line: string | undefined) => (line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0);
  const value = (suffix: string) => number(lines.find((l) => l.startsWith(`signet_sign_batch_size_${suffix}{`) && l.includes(`key="${target.key}"`)));
  const failed = lines
    .filter((l) => l.startsWith('signet_sign_requests_total{') && l.includes(`key="${target.key}"`) && !l.includes('outcome="ok"'))
    .reduce((total, l) => total + number(l), 0);
  const gauge = (name: string) => number(lines.find((l) => l.startsWith(`${name}{`) && l.includes(`key="${target.key}"`)));
  return { sum: value('sum'), count: value('count'), failed, callLimit: gauge('signet_vault_sign_calls_limit') };
}

async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const base: autocannon.Options = {
    url: spec.url,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...spec.headers },
    body: spec.body,
    connections: spec.connections,
    pipelining: 1,
    timeout: 30,
    ...(spec.socketPath ? { socketPath: spec.socketPath } : {}),
  };
  const busy = [spec.vaultPid, ...(spec.signetPid === undefined ? [] : [spec.signetPid])];
  await waitIdle(busy);
  currentLoad = autocannon({ ...base, duration: WARMUP });
  await currentLoad;
  if (cleaning) throw new Error('interrupted');
  await waitIdle(busy);
  let amount: number | undefined;
  if (spec.rounds) {
    // One round (one request per client) tells how long a round takes; then as many rounds as fill DURATION.
    // (autocannon notices that `amount` is reached only on its 1 s tick: time the round by its last answer.)
    const probeStart = performance.now();
    let lastAnswer = probeStart;
    currentLoad = autocannon({ ...base, amount: spec.connections });
    currentLoad.on('response', () => { lastAnswer = performance.now(); });
    await currentLoad;
    if (cleaning) throw new Error('interrupted');
    const round = Math.max(0.001, (lastAnswer - probeStart) / 1000);
    amount = spec.connections * Math.max(2, Math.ceil(DURATION / round));
    await waitIdle(busy);
  }

  const batch0 = spec.signetMetrics ? await batchStats(spec.signetMetrics) : undefined;
  const latencies = new Samples();
  let ok = 0;
  let failed = 0;
  let rssMax = 0;
  const rssTimer = spec.signetPid === undefined ? undefined : setInterval(() => {
    rssMax = Math.max(rssMax, rssBytes(spec.signetPid!) ?? 0);
  }, 100);
  const vault0 = cpuSeconds(spec.vaultPid);
  const signet0 = spec.signetPid === undefined ? 0 : cpuSeconds(spec.signetPid);
  const self0 = process.cpuUsage();
  const machine0 = machineBusySeconds();
  const started = performance.now();
  currentLoad = autocannon(amount === undefined ? { ...base, duration: DURATION } : { ...base, amount });
  let lastAnswer = started;
  currentLoad.on('response', (_client, status, _bytes, ms) => {
    lastAnswer = performance.now();
    if (status >= 200 && status < 300) {
      ok++;
      latencies.push(ms);
    } else {
      failed++;
    }
  });
  const result = await currentLoad;
  // In rounds, the work ends with the last answer (autocannon itself returns on its next 1 s tick).
  const seconds = ((amount === undefined ? performance.now() : lastAnswer) - started) / 1000;
  if (rssTimer) clearInterval(rssTimer);
  if (cleaning) throw new Error('interrupted');
  const self = process.cpuUsage(self0);
  const machineSeconds = machineBusySeconds() - machine0;
  const vaultSeconds = cpuSeconds(spec.vaultPid) - vault0;
  const signetSeconds = spec.signetPid === undefined ? undefined : cpuSeconds(spec.signetPid) - signet0;
  const batch1 = spec.signetMetrics ? await batchStats(spec.signetMetrics) : undefined;
  const sorted = latencies.sorted();
  // Items of answered batches that Signet refused are not tokens (a 200 batch answer may hold per-item errors).
  const failedItems = batch0 && batch1 && spec.tokensPerRequest > 1 ? batch1.failed - batch0.failed : 0;
  return {
    tokensPerSec: (ok * spec.tokensPerRequest - failedItems) / seconds,
    requestsPerSec: ok / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    ok,
    failed: failed + result.errors + result.timeouts,
    vaultCpu: (vaultSeconds / seconds) * 100,
    signetCpu: signetSeconds === undefined ? undefined : (signetSeconds / seconds) * 100,
    loadCpu: ((self.user + self.system) / 1e6 / seconds) * 100,
    otherCpu: (Math.max(0, machineSeconds - vaultSeconds - (signetSeconds ?? 0) - (self.user + self.system) / 1e6) / seconds) * 100,
    rssMax: spec.signetPid === undefined ? undefined : rssMax,
    meanBatch: batch0 && batch1 && batch1.count > batch0.count ? (batch1.sum - batch0.sum) / (batch1.count - batch0.count) : undefined,
    failedItems: batch0 && batch1 && spec.tokensPerRequest > 1 ? failedItems : undefined,
    callLimit: batch1?.callLimit,
  };
}

// ---------------------------------------------------------------------------------------------------------

/** A JWS signing input of the size Signet produces, for the direct Vault calls of (a) and (b). */
function fixedInput(alg: JwsAlg): string {
  const header = Buffer.from(JSON.stringify({ alg, kid: 'x'.repeat(43), typ: 'JWT' })).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const payload = Buffer.from(JSON.stringify({
    sub: 'bench-user', scope: 'read', iss: 'https://bench', iat: now, nbf: now, exp: now + 300, jti: 'y'.repeat(22),
  })).toString('base64url');
  return Buffer.from(`${header}.${payload}`, 'ascii').toString('base64');
}

function vaultSignPath(c: AlgCase): string {
  const spec = algSpec(c.alg);
  return `transit/sign/${c.key}${spec.hash ? `/${spec.hash}` : ''}`;
}

function vaultBody(c: AlgCase, items: number): string {
  const input = fixedInput(c.alg);
  const params = { ...algSpec(c.alg).signParams, key_version: 1 };
  return JSON.stringify(items === 1 ? { ...params, input } : { ...params, batch_input: Array.from({ length: items }, () => ({ input })) });
}

const SIGN_BODY = JSON.stringify({ claims: { sub: 'bench-user', scope: 'read' } });
/** (f): one caller's batch of 64 distinct claim sets. */
const BATCH_SIGN_BODY = JSON.stringify({ batch_input: Array.from({ length: BATCH_ITEMS }, (_, i) => ({ claims: { sub: `bench-user-${i}`, scope: 'read' } })) });

async function sanityChecks(vault: VaultServer, signets: Signet[]): Promise<void> {
  for (const c of CASES) {
    const single = await vaultApi(vault.address, vault.rootToken, 'POST', vaultSignPath(c), JSON.parse(vaultBody(c, 1)));
    const signature = (single.data as { signature?: string }).signature;
    if (!signature?.startsWith('vault:v1:')) throw new Error(`(a) ${c.alg}: Vault returned no signature`);
    const batch = await vaultApi(vault.address, vault.rootToken, 'POST', vaultSignPath(c), JSON.parse(vaultBody(c, BATCH_ITEMS)));
    const results = (batch.data as { batch_results?: Array<{ signature?: string; error?: string }> }).batch_results ?? [];
    if (results.length !== BATCH_ITEMS || results.some((r) => r.error || !r.signature)) throw new Error(`(b) ${c.alg}: Vault's batch answer has errors or is short`);
    for (const signet of signets) {
      const signed = await postJson(`${signet.url}/v1/sign/${c.key}`, JSON.parse(SIGN_BODY));
      if (signed.status !== 200) throw new Error(`Signet sign ${c.alg}: HTTP ${signed.status} ${JSON.stringify(signed.json)}`);
      const verified = await postJson(`${signet.url}/v1/verify`, { token: signed.json.token });
      if (verified.status !== 200 || verified.json.valid !== true) throw new Error(`Signet verify ${c.alg}: HTTP ${verified.status} ${JSON.stringify(verified.json)}`);
      const batch = await postJson(`${signet.url}/v1/sign/${c.key}`, JSON.parse(BATCH_SIGN_BODY));
      const items = (batch.json?.batch_results ?? []) as Array<{ token?: string; key_version?: number }>;
      if (batch.status !== 200 || items.length !== BATCH_ITEMS || items.some((r) => !r.token) || new Set(items.map((r) => r.key_version)).size !== 1) {
        throw new Error(`(f) ${c.alg}: Signet's batch answer has errors, is short or mixes versions (HTTP ${batch.status})`);
      }
    }
  }
}

async function signTokens(signet: Signet, c: AlgCase, count: number): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < count; i += 16) {
    const batch = await Promise.all(Array.from({ length: Math.min(16, count - i) }, async (_, j) => {
      const { status, json } = await postJson(`${signet.url}/v1/sign/${c.key}`, { claims: { sub: `bench-user-${i + j}`, scope: 'read' }, ttl: 3600 });
      if (status !== 200) throw new Error(`signing verify tokens: HTTP ${status}`);
      return json.token as string;
    }));
    tokens.push(...batch);
  }
  return tokens;
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const vaultBinary = await findVaultBinary((line) => log(line));
  out('Signet benchmark (issue 5, DESIGN §9)');
  out('='.repeat(37));
  for (const line of await machine(vaultBinary)) out(line);
  out();

  log('starting a Vault dev server');
  const vault = await startDevVault(vaultBinary);
  cleanups.push(() => vault.stop());
  const vaultPid = vault.process.pid!;
  await vaultApi(vault.address, vault.rootToken, 'POST', 'sys/mounts/transit', { type: 'transit' });
  for (const c of KEY_CASES) await vaultApi(vault.address, vault.rootToken, 'POST', `transit/keys/${c.key}`, { type: c.type });
  const keys = KEY_CASES.map((c) => ({ name: c.key, alg: c.alg, issuer: 'https://bench' }));

  log('starting Signet three times (batching off, batching on, batching on with the audit trail)');
  const auditDir = mkdtempSync(join(tmpdir(), 'signet-bench-audit-'));
  cleanups.push(async () => rmSync(auditDir, { recursive: true, force: true }));
  const audit = { file: join(auditDir, 'audit.log'), subject_key_file: join(auditDir, 'subject.key') };
  writeFileSync(audit.subject_key_file, 'bench-subject-key-0123456789abcdef', { mode: 0o600 });
  const [off, on, audited] = [await startSignet(vault, false, keys), await startSignet(vault, true, keys), await startSignet(vault, true, keys, audit)];
  // (u): the same Signet as (d), listening on a unix socket instead of TCP loopback.
  const unix = MODES.includes('u') && CLIENTS.includes(1) ? await startSignet(vault, true, keys, undefined, join(auditDir, 'signet.sock')) : undefined;
  const alt = MODES.includes('h') ? await startSignet(vault, true, keys, undefined, undefined, BATCHER_ALT ?? process.env.BENCH_BATCHER ?? '', ALT_TREE, ALT_FLAGS ?? SIGNET_FLAGS) : undefined;
  await sleep(1000);
  off.idleRss = rssBytes(off.pid);
  on.idleRss = rssBytes(on.pid);
  off.idleMemory = await memoryOf(off);
  on.idleMemory = await memoryOf(on);
  await sanityChecks(vault, [off, on, audited]);
  const proxyChild = await startChild(join(HERE, 'floor-proxy.ts'), {
    label: 'floor proxy',
    nodeArgs: SIGNET_FLAGS,
    env: { BENCH_VAULT_ADDR: vault.address, BENCH_VAULT_TOKEN: vault.rootToken },
  });
  cleanups.push(() => proxyChild.stop());
  const proxy = { url: `http://127.0.0.1:${proxyChild.hello.port as number}`, pid: proxyChild.pid };
  if (MODES.includes('g')) {
    // (g) is a floor only if it does the work: every item a compact JWS whose signature has its alg's length.
    for (const c of CASES) {
      const floor = await postJson(`${proxy.url}/jwt/${c.alg}/v1/${vaultSignPath(c)}`, JSON.parse(BATCH_SIGN_BODY));
      const tokens = ((floor.json?.batch_results ?? []) as Array<{ token?: string }>).map((r) => r.token ?? '');
      const signatureBytes = c.alg === 'RS256' ? 256 : 64;
      if (floor.status !== 200 || tokens.length !== BATCH_ITEMS || tokens.some((t) => t.split('.').length !== 3 || Buffer.from(t.split('.')[2]!, 'base64url').length !== signatureBytes)) {
        throw new Error(`(g) ${c.alg}: the bare signer's batch answer is not ${BATCH_ITEMS} tokens (HTTP ${floor.status})`);
      }
    }
  }

  if (PIN) {
    // Every thread of each process (-a); threads started later inherit their creator's CPU set.
    await pin(vaultPid, 0);
    for (const pid of [off.pid, on.pid, audited.pid, proxy.pid, process.pid, ...(unix ? [unix.pid] : []), ...(alt ? [alt.pid] : [])]) await pin(pid, 1);
  }

  const rows: Row[] = [];
  const vaultHeaders = { 'x-vault-token': vault.rootToken };
  for (const c of CASES) {
    for (const clients of CLIENTS) {
      for (let round = 1; round <= REPEAT; round++) for (const mode of MODES) {
        if ((mode === 'p' || mode === 'u') && clients !== 1) continue;
        if ((mode === 'f' || mode === 'g' || mode === 'h') && !BATCH_CLIENTS.has(clients)) continue;
        log(`${c.alg} ${String(clients).padStart(2)} clients ${MODE_LABEL[mode]}${REPEAT > 1 ? ` round ${round}` : ''}`);
        const signet = mode === 'c' ? off : mode === 'd' || mode === 'f' ? on : mode === 'e' ? audited : mode === 'u' ? unix : undefined;
        // (f) and (h): callers' batches, to the default Signet or to (h)'s (BENCH_BATCHER_ALT, BENCH_ALT_TREE).
        const batchSignet = mode === 'f' ? on : mode === 'h' ? alt : undefined;
        const spec: LoadSpec = mode === 'p'
          ? { url: `${proxy.url}/v1/${vaultSignPath(c)}`, headers: {}, body: vaultBody(c, 1), connections: clients, tokensPerRequest: 1, vaultPid, signetPid: proxy.pid }
          : mode === 'g'
          ? {
            url: `${proxy.url}/jwt/${c.alg}/v1/${vaultSignPath(c)}`, headers: {}, body: BATCH_SIGN_BODY, connections: clients, tokensPerRequest: BATCH_ITEMS,
            vaultPid, signetPid: proxy.pid, rounds: true,
          }
          : batchSignet
          ? {
            url: `${batchSignet.url}/v1/sign/${c.key}`, headers: {}, body: BATCH_SIGN_BODY, connections: clients, tokensPerRequest: BATCH_ITEMS,
            vaultPid, signetPid: batchSignet.pid, signetMetrics: { url: batchSignet.url, key: c.key }, rounds: true,
          }
          : signet
          ? {
            url: `${signet.url}/v1/sign/${c.key}`, headers: {}, body: SIGN_BODY, connections: clients, tokensPerRequest: 1, vaultPid, signetPid: signet.pid,
            signetMetrics: { url: signet.url, key: c.key, socketPath: signet.socketPath }, socketPath: signet.socketPath,
          }
          : {
            url: `${vault.address}/v1/${vaultSignPath(c)}`, headers: vaultHeaders, body: vaultBody(c, mode === 'a' ? 1 : BATCH_ITEMS),
            connections: clients, tokensPerRequest: mode === 'a' ? 1 : BATCH_ITEMS, vaultPid, rounds: mode === 'b',
          };
        rows.push({ alg: c.alg, clients, mode, round, ...await runLoad(spec) });
      }
    }
  }

  const tokens = new Map<JwsAlg, string[]>();
  const httpVerify = new Map<JwsAlg, LoadResult>();
  if (VERIFY) {
    log('verification over HTTP (POST /v1/verify, Signet with batching on, 16 clients)');
    for (const c of CASES) tokens.set(c.alg, await signTokens(on, c, 256));
    for (const c of CASES) {
      httpVerify.set(c.alg, await runLoad({
        url: `${on.url}/v1/verify`, headers: {}, body: JSON.stringify({ token: tokens.get(c.alg)![0] }),
        connections: 16, tokensPerRequest: 1, vaultPid, signetPid: on.pid,
      }));
    }
  }

  log('Signet idle again (2 s after the load)');
  await sleep(2000);
  const afterRss = { off: rssBytes(off.pid), on: rssBytes(on.pid) };
  const afterMemory = { off: await memoryOf(off), on: await memoryOf(on) };

  // Local verification in one process pinned to one core; Vault and both Signets are idle meanwhile.
  const pinned = existsSync('/usr/bin/taskset') || existsSync('/bin/taskset');
  const microSeconds = Math.max(1, DURATION / 2);
  let microResults: Record<string, Record<string, number>> = {};
  if (VERIFY) {
    log(`in-process verification (${pinned ? 'pinned to CPU 0 with taskset' : 'taskset not found: not pinned'})`);
    const micro = await startChild(join(HERE, 'verify-micro.ts'), {
      label: 'verify-micro',
      pinCpu: pinned ? 0 : undefined,
      env: { BENCH_VAULT_ADDR: vault.address, BENCH_VAULT_TOKEN: vault.rootToken, BENCH_KEYS: JSON.stringify(keys) },
    });
    cleanups.push(() => micro.stop());
    micro.send(JSON.stringify({ seconds: microSeconds, tokens: Object.fromEntries(tokens) }));
    microResults = (await micro.nextMessage()).results as Record<string, Record<string, number>>;
    await micro.stop();
  }

  // ---------------------------------------------------------------------------------------------------------
  out('Signing: tokens/s; latency per HTTP request, ms; CPU use during the measurement in % of one core (2 cores = 200 %)');
  out('of Vault, of the sidecar (Signet, or the bare proxy of (p)) and of the load generator,');
  out('and in CPU microseconds per token; other = everything else on the machine (other processes, interrupts, the hypervisor\'s steal): when it is');
  out('more than a few %, something else competed for the 2 cores; batch = mean items per Vault call Signet made;');
  out('calls = Signet\'s limit on full batches at Vault at once at the end (signet_vault_sign_calls_limit, adapted to Vault\'s latency)');
  out();
  const perToken = (percent: number | undefined, r: Row) => (percent === undefined ? '' : fixed((percent / 100 / r.tokensPerSec) * 1e6, 0));
  // With BENCH_REPEAT, a figure is the round with the median tokens/s (rounds of a case alternate their modes).
  const find = (alg: JwsAlg, clients: number, mode: Mode) => {
    const rounds = rows.filter((r) => r.alg === alg && r.clients === clients && r.mode === mode).sort((x, y) => x.tokensPerSec - y.tokensPerSec);
    return rounds[Math.floor((rounds.length - 1) / 2)];
  };
  out(table(
    ['alg', 'clients', 'mode', 'tokens/s', 'p50 ms', 'p99 ms', 'vault %', 'sidecar %', 'loadgen %', 'other %', 'vault us/tok', 'sidecar us/tok', 'batch', 'calls', 'failed'],
    rows.map((r) => [
      r.alg, r.clients, `${MODE_LABEL[r.mode]}${REPEAT > 1 ? ` #${r.round}` : ''}`, thousands(r.tokensPerSec), fixed(r.p50, 3), fixed(r.p99, 3),
      fixed(r.vaultCpu, 0), r.signetCpu === undefined ? '' : fixed(r.signetCpu, 0), fixed(r.loadCpu, 0), fixed(r.otherCpu, 0),
      perToken(r.vaultCpu, r), perToken(r.signetCpu, r), r.meanBatch === undefined ? '' : fixed(r.meanBatch, 1), r.callLimit === undefined ? '' : r.callLimit,
      r.failedItems ? `${r.failed} + ${r.failedItems} items` : r.failed,
    ]),
    [false, true, false, true, true, true, true, true, true, true, true, true, true, true, true],
  ));
  out();

  if (VERIFY) {
    out(`Verification: in-process, one process pinned to one core (${pinned ? 'taskset -c 0' : 'not pinned'}), ${microSeconds} s each, 256 distinct tokens per alg`);
    out('  raw = split + base64url-decode + crypto.verify with a pre-imported KeyObject (sync loop)');
    out('  WebCrypto = crypto.subtle.verify with the pre-imported CryptoKey; jose = compactVerify; Signet = verifier.verify');
    out();
    out(table(
      ['alg', 'raw crypto.verify/s', 'WebCrypto/s (16 in flight)', 'jose/s (16 in flight)', 'Signet verify/s (1 in flight)', 'Signet verify/s (16 in flight)'],
      CASES.map((c) => {
        const m = microResults[c.alg]!;
        return [c.alg, thousands(m.raw!), thousands(m.subtle16!), thousands(m.jose16!), thousands(m.verify1!), thousands(m.verify16!)];
      }),
      [false, true, true, true, true, true],
    ));
    out();
    out('Verification over HTTP: POST /v1/verify, 16 clients, Signet with batching on (not pinned)');
    out();
    out(table(
      ['alg', 'verifies/s', 'p50 ms', 'p99 ms', 'signet %', 'loadgen %', 'other %', 'failed'],
      CASES.map((c) => {
        const r = httpVerify.get(c.alg)!;
        return [c.alg, thousands(r.tokensPerSec), fixed(r.p50, 3), fixed(r.p99, 3), fixed(r.signetCpu ?? Number.NaN, 0), fixed(r.loadCpu, 0), fixed(r.otherCpu, 0), r.failed];
      }),
      [false, true, true, true, true, true, true, true],
    ));
    out();
  }

  const maxRss = (mode: Mode) => Math.max(0, ...rows.filter((r) => r.mode === mode && r.clients === Math.max(...CLIENTS)).map((r) => r.rssMax ?? 0)) || undefined;
  out('Signet RSS (VmRSS of the Signet process, MB)');
  out();
  out(table(
    ['Signet', 'idle after start', `max under ${Math.max(...CLIENTS)}-client load`, 'idle after the load'],
    [
      ['batching off', mb(off.idleRss), mb(maxRss('c')), mb(afterRss.off)],
      ['batching on', mb(on.idleRss), mb(maxRss('d')), mb(afterRss.on)],
    ],
    [false, true, true, true],
  ));
  out();
  const heap = (m: Memory | undefined) => (m ? `${mb(m.heapUsed)} / ${mb(m.heapTotal)} / ${mb(m.external)}` : 'n/a');
  out(table(
    ['Signet', 'V8 heap used / total / external, after start', 'same, idle after the load'],
    [['batching off', heap(off.idleMemory), heap(afterMemory.off)], ['batching on', heap(on.idleMemory), heap(afterMemory.on)]],
    [false, true, true],
  ));
  out();

  // ---------------------------------------------------------------------------------------------------------
  const targets: Array<[string, string, string, boolean | undefined]> = [];
  const ratio = (x: number | undefined, y: number | undefined) => (x === undefined || y === undefined || !y ? undefined : x / y);
  // tokens/s of mode x over mode y for one case: with BENCH_REPEAT, the median of each round's own ratio (the two
  // modes of a round ran back to back, on the same machine speed) over the rounds where neither saw more than
  // OTHER_LIMIT of other load (value NaN when none did), else the one ratio. `rounds` says how many counted.
  const tokensRatio = (alg: JwsAlg, clients: number, x: Mode, y: Mode): { value: number; rounds: string } | undefined => {
    const of = (mode: Mode) => rows.filter((r) => r.alg === alg && r.clients === clients && r.mode === mode);
    const ys = of(y);
    const pairs = of(x).flatMap((rx) => {
      const ry = ys.find((r) => r.round === rx.round);
      const v = ratio(rx.tokensPerSec, ry?.tokensPerSec);
      return v === undefined ? [] : [{ v, calm: rx.otherCpu <= OTHER_LIMIT && ry!.otherCpu <= OTHER_LIMIT }];
    });
    if (pairs.length === 0) return undefined;
    const each = (REPEAT > 1 ? pairs.filter((p) => p.calm) : pairs).map((p) => p.v).sort((p, q) => p - q);
    const rounds = REPEAT > 1 ? ` (${each.length}/${pairs.length} rounds)` : '';
    const mid = each.length / 2;
    const value = each.length === 0 ? Number.NaN : each.length % 2 ? each[Math.floor(mid)]! : (each[mid - 1]! + each[mid]!) / 2;
    return { value, rounds };
  };
  const show = (v: number | undefined, digits = 2, unit = '') => (v === undefined || !Number.isFinite(v) ? 'n/a' : `${v.toFixed(digits)}${unit}`);
  const showRatio = (r: { value: number; rounds: string } | undefined, digits = 2, unit = '') => `${show(r?.value, digits, unit)}${r?.rounds ?? ''}`;
  const check = (v: number | undefined, ok: (v: number) => boolean) => (v === undefined || !Number.isFinite(v) ? undefined : ok(v));
  for (const c of CASES) {
    const v = tokensRatio(c.alg, 64, 'd', 'a');
    const primary = c.alg === 'ES256';
    targets.push([`(d) / (a) tokens/s at 64 clients, ${c.alg}${primary ? '' : ' (target is for ES256)'}`, showRatio(v, 2, 'x'), '>= 4x', primary ? check(v?.value, (x) => x >= 4) : undefined]);
  }
  for (const c of CASES) {
    const v = tokensRatio(c.alg, 64, 'd', 'b');
    targets.push([`(d) / (b) tokens/s at 64 clients, ${c.alg}`, showRatio(v), '>= 0.8', check(v?.value, (x) => x >= 0.8)]);
  }
  // Issue 14: callers' own batches through Signet against the same batches sent straight to Vault.
  for (const c of CASES) {
    for (const clients of [...BATCH_CLIENTS]) {
      const v = tokensRatio(c.alg, clients, 'f', 'b');
      const checked = c.alg === 'ES256' || c.alg === 'EdDSA';
      targets.push([`(f) / (b) tokens/s at ${clients} client${clients > 1 ? 's' : ''}, ${c.alg}${checked ? '' : ' (target is for ES256 and EdDSA)'}`,
        showRatio(v), '>= 0.8', checked ? check(v?.value, (x) => x >= 0.8) : undefined]);
      const floor = tokensRatio(c.alg, clients, 'g', 'b');
      if (floor !== undefined) targets.push([`  (g) / (b): the same batches through a bare Node JWT signer (information: what any Node sidecar reaches here)`, showRatio(floor), '', undefined]);
    }
  }
  for (const c of CASES) {
    const best = Math.max(...rows.filter((r) => r.alg === c.alg && r.mode === 'b').map((r) => r.tokensPerSec));
    const v = ratio(find(c.alg, 64, 'd')?.tokensPerSec, Number.isFinite(best) ? best : undefined);
    targets.push([`(d) at 64 clients / best (b) at any client count, ${c.alg} (information)`, show(v), '>= 0.8', undefined]);
  }
  for (const c of CASES) {
    const a = find(c.alg, 64, 'a');
    const d = find(c.alg, 64, 'd');
    const v = a && d ? ratio(a.vaultCpu / a.tokensPerSec, d.vaultCpu / d.tokensPerSec) : undefined;
    targets.push([`Vault CPU per token, (a) / (d) at 64 clients, ${c.alg} (information: Vault's work saved)`, show(v, 2, 'x'), '', undefined]);
  }
  for (const c of CASES) {
    const cc = find(c.alg, 1, 'c');
    const a = find(c.alg, 1, 'a');
    const v = cc && a ? cc.p50 - a.p50 : undefined;
    targets.push([`p50 (c) - p50 (a) at 1 client, ${c.alg}`, show(v, 3, ' ms'), '<= 0.2 ms', check(v, (x) => x <= 0.2)]);
  }
  for (const c of CASES) {
    const cc = find(c.alg, 1, 'c');
    const p = find(c.alg, 1, 'p');
    const a = find(c.alg, 1, 'a');
    const v = cc && p ? cc.p50 - p.p50 : undefined;
    const floor = p && a ? p.p50 - a.p50 : undefined;
    targets.push([`  of which above a bare Node proxy (p), ${c.alg} (information; the proxy itself adds ${show(floor, 3, ' ms')})`, show(v, 3, ' ms'), '', undefined]);
  }
  for (const c of CASES) {
    const u = find(c.alg, 1, 'u');
    const a = find(c.alg, 1, 'a');
    const d = find(c.alg, 1, 'd');
    const v = u && a ? u.p50 - a.p50 : undefined;
    targets.push([`p50 (u) - p50 (a) at 1 client, ${c.alg}: Signet on its unix socket (information; over TCP (d): ${show(d && a ? d.p50 - a.p50 : undefined, 3, ' ms')})`, show(v, 3, ' ms'), '', undefined]);
  }
  for (const c of CASES) {
    const v = ratio(find(c.alg, 1, 'd')?.p50, find(c.alg, 1, 'c')?.p50);
    targets.push([`p50 (d) / p50 (c) at 1 client, ${c.alg}`, show(v, 3), '<= 1.05', check(v, (x) => x <= 1.05)]);
  }
  for (const c of CASES) {
    const m = microResults[c.alg];
    const v = m ? ratio(Math.max(m.verify1!, m.verify16!), m.raw) : undefined;
    targets.push([`in-process verify / raw crypto.verify, one core, ${c.alg} (best of 1 and 16 in flight)`, show(v), '>= 0.7', check(v, (x) => x >= 0.7)]);
  }
  for (const [name, value] of [['batching on', maxRss('d')], ['batching off', maxRss('c')]] as const) {
    targets.push([`Signet RSS under ${Math.max(...CLIENTS)}-client load, ${name}`, value === undefined ? 'n/a' : `${mb(value)} MB`, '<= 100 MB', check(value, (x) => x <= 100 * 1024 * 1024)]);
  }
  for (const [name, value] of [['batching on', on.idleRss], ['batching off', off.idleRss]] as const) {
    targets.push([`Signet RSS idle after start, ${name}`, `${mb(value)} MB`, '<= 70 MB', check(value, (x) => x <= 70 * 1024 * 1024)]);
  }
  for (const [name, value] of [['batching on', afterRss.on], ['batching off', afterRss.off]] as const) {
    targets.push([`Signet RSS idle after the load, ${name}`, `${mb(value)} MB`, '<= 70 MB', check(value, (x) => x <= 70 * 1024 * 1024)]);
  }
  for (const c of CASES) {
    const v = tokensRatio(c.alg, 64, 'e', 'd');
    targets.push([`(e) / (d) tokens/s at 64 clients, ${c.alg} (audit trail on, issue 15)`, showRatio(v, 3), '>= 0.9', check(v?.value, (x) => x >= 0.9)]);
  }
  for (const c of CASES) {
    const e = find(c.alg, 1, 'e');
    const d = find(c.alg, 1, 'd');
    const v = e && d ? e.p50 - d.p50 : undefined;
    targets.push([`p50 (e) - p50 (d) at 1 client, ${c.alg} (audit trail on, issue 15)`, show(v, 3, ' ms'), '<= 0.05 ms', check(v, (x) => x <= 0.05)]);
  }
  let auditBytes = 0;
  try { auditBytes = statSync(audit.file).size; } catch { /* none written */ }
  out(`Audit trail of (e): ${mb(auditBytes)} MB written to ${audit.file} during the run.`);
  out();
  out('Targets (issues 5, 14 and 15), ratios from this run');
  out();
  out(table(
    ['target', 'value', 'goal', 'status'],
    targets.map(([name, value, goal, met]) => [name, value, goal, met === undefined ? '-' : met ? 'met' : 'MISSED']),
    [false, true, false, false],
  ));
  const missed = targets.filter((t) => t[3] === false).length;
  out();
  // Where the 64-client throughput goes: every token costs CPU in Vault, in Signet and in the load generator, and
  // here all three share the same cores.
  const cores = CORES;
  const us = (percent: number | undefined, r: Row) => ((percent ?? 0) / 100 / r.tokensPerSec) * 1e6;
  for (const c of CASES) {
    const a = find(c.alg, 64, 'a');
    const b = find(c.alg, 64, 'b');
    const d = find(c.alg, 64, 'd');
    if (!a || !b || !d || PIN) continue;
    const [vd, sd, ld, vb] = [us(d.vaultCpu, d), us(d.signetCpu, d), us(d.loadCpu, d), us(b.vaultCpu, b)];
    const ceiling = (cores * 1e6) / (vd + sd + ld);
    const best = (cores * 1e6) / (vb + sd + ld);
    out(`CPU budget, ${c.alg} (d) at 64 clients: Vault ${fixed(vd, 0)} + Signet ${fixed(sd, 0)} + load generator ${fixed(ld, 0)} = ${fixed(vd + sd + ld, 0)} us per token;`
      + ` ${cores} cores allow at most ${thousands(ceiling)} tokens/s (${fixed(ceiling / a.tokensPerSec, 1)}x (a), ${fixed(ceiling / b.tokensPerSec, 2)} of (b)).`
      + ` At Vault's batch-64 cost (${fixed(vb, 0)} us, from (b)): ${thousands(best)} tokens/s (${fixed(best / a.tokensPerSec, 1)}x (a), ${fixed(best / b.tokensPerSec, 2)} of (b)).`);
  }
  // Issue 14's (f) against (b) on the same cores: (b) spends its CPU on Vault (and the load generator) only, (f) on
  // Vault and Signet too, so the ratio (f) / (b) cannot pass what the cores allow once Signet's share is paid.
  for (const c of CASES) {
    for (const clients of [...BATCH_CLIENTS]) for (const mode of ['f', 'g'] as const) {
      const b = find(c.alg, clients, 'b');
      const f = find(c.alg, clients, mode);
      if (!b || !f) continue;
      const [vb, lb, vf, sf, lf] = [us(b.vaultCpu, b), us(b.loadCpu, b), us(f.vaultCpu, f), us(f.signetCpu, f), us(f.loadCpu, f)];
      // Pinned: Vault has CPU 0 to itself, the rest shares CPU 1; otherwise everything shares every core.
      const ceilingB = PIN ? Math.min(1e6 / vb, 1e6 / lb) : (cores * 1e6) / (vb + lb);
      const ceilingF = PIN ? Math.min(1e6 / vf, 1e6 / (sf + lf)) : (cores * 1e6) / (vf + sf + lf);
      const sidecar = mode === 'f' ? 'Signet' : 'bare signer';
      out(`CPU budget, ${c.alg} at ${clients} client${clients > 1 ? 's' : ''}: (b) Vault ${fixed(vb, 0)} + load generator ${fixed(lb, 0)} us per token, (${mode}) Vault ${fixed(vf, 0)} + ${sidecar} ${fixed(sf, 0)}`
        + ` + load generator ${fixed(lf, 0)} us; with every core busy ${PIN ? 'the pinned CPUs allow' : `${cores} cores allow`} (${mode}) / (b) at most ${fixed(ceilingF / ceilingB, 2)}`
        + ` (measured ${fixed(f.tokensPerSec / b.tokensPerSec, 2)}; Vault busy ${fixed(b.vaultCpu, 0)} % in (b), ${fixed(f.vaultCpu, 0)} % in (${mode})).`);
    }
  }
  out();
  const batchClients = [...BATCH_CLIENTS].filter((n) => CLIENTS.includes(n));
  out('Sidecar CPU per token (issue 14): Signet with one token per request (d) and callers\' batches of 64 (f), and the bare Node JWT signer with the same batches (g), microseconds of CPU');
  out();
  out(table(
    ['alg', ...CLIENTS.map((n) => `(d) ${n} clients`), ...batchClients.flatMap((n) => [`(f) ${n} clients`, `(g) ${n} clients`])],
    CASES.map((c) => [
      c.alg,
      ...CLIENTS.map((n) => { const r = find(c.alg, n, 'd'); return r ? perToken(r.signetCpu, r) : 'n/a'; }),
      ...batchClients.flatMap((n) => (['f', 'g'] as const).map((mode) => { const r = find(c.alg, n, mode); return r ? perToken(r.signetCpu, r) : 'n/a'; })),
    ]),
    [false, ...CLIENTS.map(() => true), ...batchClients.flatMap(() => [true, true])],
  ));
  out();
  const busiest = Math.max(...rows.map((r) => r.otherCpu));
  out(`Other load on the machine during the signing measurements: at most ${fixed(busiest, 0)} % of one core`
    + `${busiest > OTHER_LIMIT ? ' (something else competed for the cores: figures are less reliable)' : ''}; load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}.`);
  out(`${targets.filter((t) => t[3] === true).length} met, ${missed} missed.`);
}

try {
  await main();
} catch (error) {
  if (!cleaning) {
    process.stderr.write(`bench: failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  }
} finally {
  await cleanup();
}
