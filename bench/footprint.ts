// `npm run bench:footprint`: what one Signet sidecar costs a pod, against a bare Node `http` server started by this
// script on the same node binary, in one run (issue 11 §2). Both face the same load generator (autocannon, in this
// process) against a real Vault dev server this script starts:
//   start    spawn → first 200 answer (for Signet: the first signed token, ES256, i.e. Vault authenticated and the
//            keys loaded);
//   idle     RSS 3 s after that first answer;
//   peak     the highest RSS sampled (every 50 ms) under 64 concurrent clients for 6 s (Signet: POST /v1/sign/app,
//            ES256; bare Node: the same POST, answered with a constant);
//   after    RSS 10 s after the load ends;
//   and the requests per second of that load, RssAnon/RssFile at peak (/proc/<pid>/status).
// Signet runs as the image runs it: the production bundle (npm run build, built here when stale), its CMD's
// arguments, the image's default configuration file, and the image's ENV (NODE_ENV, NODE_OPTIONS,
// MALLOC_ARENA_MAX, read from the Dockerfile). The bare server gets Node's defaults.
//
// Levers, to compare in one command: FOOTPRINT_SIGNET=sources runs `node src/cli.ts` (type stripping) instead of the
// bundle; FOOTPRINT_ENV='{"NODE_OPTIONS":"","MALLOC_ARENA_MAX":""}' overrides (an empty value removes) variables of
// the image's ENV. FOOTPRINT_CLIENTS (64), FOOTPRINT_SECONDS (6), FOOTPRINT_AFTER (10) change the load.
// A benchmark, not a test: it asserts nothing; it prints the figures and each target, met or missed.

import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findVaultBinary, freePort, startDevVault, vaultApi, type VaultServer } from '../src/vault/dev-server.ts';
import { execForm, readDockerfile, stageEnv, stages } from '../test/harness/dockerfile.ts';
import { builtSignet } from '../test/harness/build.ts';
import { fixed, mb, sleep, table, waitIdle } from './lib.ts';

const ROOT = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const CLIENTS = Number(process.env.FOOTPRINT_CLIENTS ?? 64);
const SECONDS = Number(process.env.FOOTPRINT_SECONDS ?? 6);
const AFTER = Number(process.env.FOOTPRINT_AFTER ?? 10);
const IDLE_SETTLE_MS = 3000;
const SIGN_BODY = JSON.stringify({ claims: { sub: 'footprint', aud: 'api' } });

const log = (line: string) => process.stderr.write(`footprint: ${line}\n`);

interface Status { rss: number; hwm: number; anon: number; file: number }

function status(pid: number): Status | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon'), file: kb('RssFile') };
  } catch {
    return undefined;
  }
}

/** The final stage of the Dockerfile: its ENV and its CMD's arguments after `node`. */
function image(): { env: Record<string, string>; args: string[] } {
  const final = stages(readDockerfile()).at(-1)!;
  const env = stageEnv(final);
  const cmd = execForm(final.instructions.find((i) => i.keyword === 'CMD')!.args)!;
  return { env, args: cmd.slice(1) };
}

interface Figures { label: string; startMs: number; idle: Status; peak: Status; after: Status; rps: number; errors: number; flags: string }

async function measure(label: string, args: string[], env: NodeJS.ProcessEnv, url: string, vault: VaultServer): Promise<Figures> {
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, args, { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => { output = (output + c.toString()).slice(-4000); });
  child.stderr!.on('data', (c: Buffer) => { output = (output + c.toString()).slice(-4000); });
  const pid = child.pid!;
  try {
    let startMs: number | undefined;
    while (startMs === undefined) {
      if (child.exitCode !== null) throw new Error(`${label} exited (${child.exitCode}):\n${output}`);
      if (performance.now() - started > 60_000) throw new Error(`${label}: no successful answer within 60 s:\n${output}`);
      try {
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: SIGN_BODY, signal: AbortSignal.timeout(2000) });
        await response.arrayBuffer();
        if (response.status === 200) startMs = performance.now() - started;
      } catch { /* not listening yet */ }
      if (startMs === undefined) await sleep(5);
    }
    await sleep(IDLE_SETTLE_MS);
    const idle = status(pid)!;
    await waitIdle([pid, vault.process.pid!]);

    let peak = status(pid)!;
    const sampler = setInterval(() => {
      const now = status(pid);
      if (now && now.rss > peak.rss) peak = now;
    }, 50);
    let ok = 0;
    const running = autocannon({
      url, method: 'POST', headers: { 'content-type': 'application/json' }, body: SIGN_BODY,
      connections: CLIENTS, pipelining: 1, duration: SECONDS, timeout: 30,
    });
    running.on('response', (_client, statusCode) => { if (statusCode === 200) ok++; });
    const load = await running;
    clearInterval(sampler);
    const end = status(pid)!;
    if (end.rss > peak.rss) peak = end;
    peak = { ...peak, hwm: end.hwm };
    await sleep(AFTER * 1000);
    const after = status(pid)!;
    return {
      label, startMs, idle, peak, after, rps: ok / SECONDS, errors: load.non2xx + load.errors + load.timeouts,
      flags: [env.NODE_OPTIONS ? `NODE_OPTIONS=${env.NODE_OPTIONS}` : '', env.MALLOC_ARENA_MAX ? `MALLOC_ARENA_MAX=${env.MALLOC_ARENA_MAX}` : ''].filter(Boolean).join(' ') || '(Node defaults)',
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
  }
}

const BARE_SERVER = `
const { createServer } = require('node:http');
createServer((req, res) => {
  req.resume();
  req.on('end', () => { res.setHeader('content-type', 'application/json'); res.end('{"token":"bare"}'); });
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'signet-footprint-'));
  const vault = await startDevVault(await findVaultBinary());
  try {
    await vaultApi(vault.address, vault.rootToken, 'POST', 'sys/mounts/transit', { type: 'transit' });
    // The image's default configuration (deploy/signet.example.yaml) signs with these two keys.
    await vaultApi(vault.address, vault.rootToken, 'POST', 'transit/keys/app', { type: 'ecdsa-p256' });
    await vaultApi(vault.address, vault.rootToken, 'POST', 'transit/keys/app-hmac', { type: 'hmac', key_size: 32 });

    const sources = process.env.FOOTPRINT_SIGNET === 'sources';
    const { env: imageEnv, args } = image();
    const overrides = JSON.parse(process.env.FOOTPRINT_ENV ?? '{}') as Record<string, string>;
    const signetEnv: Record<string, string> = { ...imageEnv, ...overrides };
    for (const [name, value] of Object.entries(signetEnv)) if (value === '') delete signetEnv[name];
    const bundle = await builtSignet();
    const signetArgs = args.map((a) => (a === 'dist/signet.mjs' ? (sources ? join(ROOT, 'src', 'cli.ts') : bundle) : a === '/etc/signet/signet.yaml' ? join(ROOT, 'deploy', 'signet.example.yaml') : a));
    const { PATH, HOME } = process.env;

    const barePort = await freePort();
    log(`bare Node ${process.version} http server on 127.0.0.1:${barePort}`);
    const bare = await measure('bare Node', ['-e', BARE_SERVER], { PATH, HOME, PORT: String(barePort) }, `http://127.0.0.1:${barePort}/`, vault);
    const signetPort = await freePort();
    log(`Signet: node ${signetArgs.map((a) => a.replace(`${ROOT}/`, '')).join(' ')} with ${JSON.stringify(signetEnv)}`);
    const signet = await measure(sources ? 'Signet (sources)' : 'Signet (bundle)', signetArgs, {
      PATH, HOME, ...signetEnv,
      SIGNET_CONFIG: join(ROOT, 'deploy', 'signet.example.yaml'),
      SIGNET_LISTEN: `127.0.0.1:${signetPort}`, SIGNET_LOG_LEVEL: 'warn',
      VAULT_ADDR: vault.address, VAULT_TOKEN: vault.rootToken,
    }, `http://127.0.0.1:${signetPort}/v1/sign/app`, vault);

    const ratio = (s: number, b: number) => s / b;
    const verdict = (value: number, target: number) => `${value <= target ? 'met' : 'MISSED'} (target ≤ ${target})`;
    process.stdout.write(`${table(
      ['', 'start → first answer (ms)', 'idle RSS (MB)', `peak RSS, ${CLIENTS} clients ${SECONDS} s (MB)`, `RSS ${AFTER} s after (MB)`, 'peak anon/file (MB)', 'req/s', 'errors', 'settings'],
      [bare, signet].map((f) => [f.label, fixed(f.startMs, 0), mb(f.idle.rss), mb(f.peak.rss), mb(f.after.rss), `${mb(f.peak.anon)}/${mb(f.peak.file)}`, fixed(f.rps, 0), f.errors, f.flags]),
      [false, true, true, true, true, true, true, true, false],
    )}\n\n`);
    process.stdout.write(`${table(['measure', 'Signet ÷ bare Node', 'verdict'], [
      ['idle RSS after start (keys loaded)', fixed(ratio(signet.idle.rss, bare.idle.rss), 2), verdict(ratio(signet.idle.rss, bare.idle.rss), 1.9)],
      [`peak RSS under ${CLIENTS} signing clients (ES256, ${SECONDS} s)`, fixed(ratio(signet.peak.rss, bare.peak.rss), 2), verdict(ratio(signet.peak.rss, bare.peak.rss), 2.5)],
      [`RSS ${AFTER} s after the load ends`, fixed(ratio(signet.after.rss, bare.after.rss), 2), verdict(ratio(signet.after.rss, bare.after.rss), 2.2)],
      ['start of the process → first successful sign', `${fixed(signet.startMs / 1000, 2)} s`, verdict(signet.startMs / 1000, 1.5)],
    ])}\n`);
  } finally {
    await vault.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
